package install

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/rosterhq/roster/test/testenv"
)

// helm runs the Helm that make builds into bin/ ($HELM), on the chart.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		matches, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "bin", "helm-*"))
		if len(matches) == 0 {
			t.Fatal("helm is not built: run make helm (make test does)")
		}
		path = matches[len(matches)-1]
	}
	if err := testenv.DependOnTree(filepath.Join(testenv.RepoRoot(), "charts")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = testenv.RepoRoot()
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errs.String())
	}
	return out.String()
}

// byKindAndName indexes objects by kind/name.
func byKindAndName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, obj := range objs {
		out[obj.GetKind()+"/"+obj.GetName()] = obj
	}
	return out
}

// clusterScoped are the kinds of the install that have no namespace: kustomize writes
// one on those it does not know, the API server drops it.
var clusterScoped = map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}

// The chart is lint-clean, and with its default values renders the objects
// config/default renders, field for field: the namespace aside (Helm installs into one),
// and the CRDs' part-of label (Helm does not template crds/).
func TestHelmChartRendersTheDefaultInstall(t *testing.T) {
	helm(t, "lint", "--strict", "charts/roster")
	chart := byKindAndName(decodeDocs(t, []byte(helm(t, "template", "roster", "charts/roster", "-n", "roster-system", "--include-crds"))))
	var want []*unstructured.Unstructured
	for _, obj := range render(t) {
		if obj.GetKind() != "Namespace" {
			want = append(want, obj)
		}
	}
	if len(chart) != len(want) {
		t.Errorf("the chart renders %d objects, config/default %d", len(chart), len(want))
	}
	for _, w := range want {
		key := w.GetKind() + "/" + w.GetName()
		got, ok := chart[key]
		if !ok {
			t.Errorf("the chart lacks %s", key)
			continue
		}
		if clusterScoped[w.GetKind()] {
			w.SetNamespace("")
		}
		if w.GetKind() == "CustomResourceDefinition" {
			w.SetLabels(nil)
		}
		if !equality.Semantic.DeepEqual(w.Object, got.Object) {
			a, _ := yaml.Marshal(w.Object)
			b, _ := yaml.Marshal(got.Object)
			t.Errorf("%s differs:\nconfig/default:\n%s\nchart:\n%s", key, a, b)
		}
	}
}

// The chart installs into an API server of its own (a server-side dry run; the other
// tests of this package install Roster's cluster-wide objects without Helm), in another
// namespace, with values a production install sets; its options add what they say.
func TestHelmInstallDryRunServer(t *testing.T) {
	ctx := context.Background()
	cluster, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	ns := "identity"
	if err := cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cluster.AdminKubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	out := helm(t, "install", "roster", "charts/roster", "-n", ns, "--dry-run=server", "--kubeconfig", path,
		"--set", "image.repository=registry.example.com/roster,image.tag=v1.2.3,replicas=3",
		"--set", "extraArgs[0]=--kubernetes-username-prefix=oidc:", "--set", "shards={eu,us}")
	for _, want := range []string{"STATUS: pending-install", "image: registry.example.com/roster:v1.2.3", "replicas: 3",
		"--kubernetes-username-prefix=oidc:", "system:serviceaccount:identity:roster-controller-manager",
		"name: roster-controller-manager-eu", "- --shard=eu", "name: roster-controller-manager-us", "- --shard=us"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run lacks %q", want)
		}
	}
	assertShards(t, decodeDocs(t, []byte(helm(t, "template", "roster", "charts/roster", "-n", ns, "--set", "shards={eu,us}"))))
	options := byKindAndName(decodeDocs(t, []byte(helm(t, "template", "roster", "charts/roster", "-n", ns, "--set",
		"inboundSCIM.certManager.enabled=true,inboundSCIM.certManager.dnsNames[0]=scim.example.com,serviceMonitor.enabled=true,prometheusRule.enabled=true,networkPolicy.enabled=false,podDisruptionBudget.enabled=false"))))
	for key, want := range map[string]bool{"Issuer/roster-selfsigned": true, "Certificate/roster-inbound-scim": true, "ServiceMonitor/roster": true,
		"PrometheusRule/roster": true, "NetworkPolicy/roster-ingress": false, "PodDisruptionBudget/roster-controller-manager": false} {
		if _, found := options[key]; found != want {
			t.Errorf("with the options set, %s rendered: %v, want %v", key, found, want)
		}
	}
}

// assertShards: each shard has a Deployment and a disruption budget of its own, whose
// selector matches its pods and no other Deployment's; the Services and network
// policies cover every replica.
func assertShards(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	pods := map[string]map[string]string{} // Deployment → its pods' labels
	selectors := map[string]map[string]string{}
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Deployment", "PodDisruptionBudget":
			sel, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "selector", "matchLabels")
			selectors[obj.GetKind()+"/"+obj.GetName()] = sel
			if obj.GetKind() == "Deployment" {
				pods[obj.GetName()], _, _ = unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "labels")
			}
		case "Service":
			sel, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "selector")
			selectors[obj.GetKind()+"/"+obj.GetName()] = sel
		case "NetworkPolicy":
			sel, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "podSelector", "matchLabels")
			selectors[obj.GetKind()+"/"+obj.GetName()] = sel
		}
	}
	if len(pods) != 3 {
		t.Fatalf("Deployments %v, want the main one and one per shard", keys(pods))
	}
	for key, sel := range selectors {
		kind, name, _ := strings.Cut(key, "/")
		for deployment, labels := range pods {
			matches := labelsMatch(sel, labels)
			want := kind == "Service" || kind == "NetworkPolicy" || name == deployment
			if matches != want {
				t.Errorf("%s selects the pods of %s: %v, want %v", key, deployment, matches, want)
			}
		}
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
