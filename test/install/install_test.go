// Package install checks that config/default renders into manifests the API server
// accepts, with what a production install needs.
package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	kubectl, err := testenv.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.DependOnTree(testenv.RepoRoot() + "/config"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", testenv.RepoRoot()+"/config/default").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	return decodeDocs(t, out)
}

// decodeDocs decodes every object of a stream of YAML documents.
func decodeDocs(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// TestDefaultInstallIsAccepted applies the rendered install with server-side dry run.
func TestDefaultInstallIsAccepted(t *testing.T) {
	ctx := context.Background()
	objs := render(t)
	kinds := map[string]int{}
	for _, obj := range objs {
		kinds[obj.GetKind()]++
		if obj.GetKind() == "Namespace" { // dry-run objects need their namespace to exist
			if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
				t.Fatalf("namespace: %v", err)
			}
		}
	}
	for _, obj := range objs {
		if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("install-test"), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Errorf("%s %s was refused: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	for kind, want := range map[string]int{"Namespace": 1, "CustomResourceDefinition": 8, "Deployment": 1, "Service": 2, "ServiceAccount": 1, "ClusterRole": 9,
		"NetworkPolicy": 2, "ValidatingAdmissionPolicy": 4, "ValidatingAdmissionPolicyBinding": 4, "PodDisruptionBudget": 1} {
		if kinds[kind] != want {
			t.Errorf("%d %s, want %d (all: %v)", kinds[kind], kind, want, kinds)
		}
	}
}

// TestDeploymentIsProductionReady checks probes, resources, a non-root security
// context, leader election, the ports the Services use, and that one replica keeps
// serving while another is disrupted: two replicas spread over nodes, a rollout that
// waits for a new one before it stops an old one, and a disruption budget of one.
func TestDeploymentIsProductionReady(t *testing.T) {
	var deploy, budget *unstructured.Unstructured
	for _, obj := range render(t) {
		switch obj.GetKind() {
		case "Deployment":
			deploy = obj
		case "PodDisruptionBudget":
			budget = obj
		}
	}
	if deploy == nil || budget == nil {
		t.Fatal("no Deployment or no PodDisruptionBudget")
	}
	if replicas, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "replicas"); fmt.Sprint(replicas) != "2" {
		t.Errorf("%v replicas, want 2: with one, a restart stops inbound SCIM", replicas)
	}
	if unavailable, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); fmt.Sprint(unavailable) != "0" {
		t.Errorf("a rollout may stop %v replicas before new ones are ready", unavailable)
	}
	if rules, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution"); len(rules) == 0 {
		t.Error("the replicas may share a node")
	}
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	selector, _, _ := unstructured.NestedStringMap(budget.Object, "spec", "selector", "matchLabels")
	minAvailable, _, _ := unstructured.NestedFieldNoCopy(budget.Object, "spec", "minAvailable")
	if fmt.Sprint(minAvailable) != "1" || len(selector) == 0 || !labels.SelectorFromSet(selector).Matches(labels.Set(podLabels)) {
		t.Errorf("the disruption budget (minAvailable %v, selector %v) does not keep one of the pods %v", minAvailable, selector, podLabels)
	}
	pod, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
		t.Error("the pod may run as root")
	}
	grace, _, _ := unstructured.NestedFieldNoCopy(pod, "terminationGracePeriodSeconds")
	if seconds, _ := strconv.ParseFloat(fmt.Sprint(grace), 64); seconds <= controllers.GracefulShutdown.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than the operator's graceful shutdown (%s)", grace, controllers.GracefulShutdown)
	}
	containers, _, _ := unstructured.NestedSlice(pod, "containers")
	c := containers[0].(map[string]any)
	for _, path := range [][]string{
		{"livenessProbe", "httpGet", "path"}, {"readinessProbe", "httpGet", "path"},
		{"resources", "requests", "memory"}, {"resources", "limits", "memory"},
	} {
		if v, found, _ := unstructured.NestedString(c, path...); !found || v == "" {
			t.Errorf("container has no %s", strings.Join(path, "."))
		}
	}
	if escalate, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); !found || escalate {
		t.Error("privilege escalation is allowed")
	}
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	for _, want := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--scim-bind-address=:9443"} {
		if !contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
