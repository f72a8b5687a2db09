package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

var (
	env        *testenv.Env
	kubeconfig string // a cluster admin's
	bossConfig string // another person's, who approves
)

func TestMain(m *testing.M) { os.Exit(start(m)) }

// start runs a control plane and the operator, with memory apps.
func start(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	dir, _ := os.MkdirTemp("", "kubectl-roster-")
	defer os.RemoveAll(dir)
	for path, user := range map[*string]string{&kubeconfig: "admin", &bossConfig: "boss@example.com"} {
		data, err := env.KubeConfig(user, "system:masters")
		if err == nil {
			*path = filepath.Join(dir, strings.Split(user, "@")[0])
			err = os.WriteFile(*path, data, 0o600)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	mgr, err := ctrl.NewManager(env.Config, controllers.ManagerOptions(ctrl.Options{Scheme: env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}))
	if err == nil {
		err = controllers.Setup(context.Background(), mgr, controllers.Options{Registry: controllers.Connectors(memory.NewApps(), nil)})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = mgr.Start(ctx) }()
	return m.Run()
}

// roster runs the plugin as kubectl would, in namespace ns.
func roster(t *testing.T, ns string, args ...string) (string, int) {
	t.Helper()
	var out, errs bytes.Buffer
	code := Run(context.Background(), append(args, "--kubeconfig", kubeconfig, "-n", ns), &out, &errs)
	if code == exitError {
		t.Logf("kubectl roster %s: %s", strings.Join(args, " "), errs.String())
	}
	return out.String(), code
}

var update = flag.Bool("update", false, "rewrite the golden files of testdata/ with what the commands print")

// golden compares a command's output with testdata/<name>.golden.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test ./cmd/kubectl-roster/plugin -update to write it", err)
	}
	if got != string(want) {
		t.Errorf("the output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the output lacks %q:\n%s", w, out)
		}
	}
}

// organisation: 48 engineers, 40 of them contractors, with wiki and chat through the
// engineering Role, ada also chat admin by her own AppAssignment; wiki holds at most 5
// deprovisions.
const people = 48

func organisation(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ns := fmt.Sprintf("org-%d", time.Now().UnixNano())
	five := int32(5)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wiki"},
			Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}, SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &five}}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}, Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}}},
		&identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "engineering"}, Spec: identityv1alpha1.RoleSpec{
			Members: identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`},
			Grants:  []identityv1alpha1.RoleGrant{{App: "wiki", Entitlements: identityv1alpha1.Entitlements{Groups: []string{"engineers"}}}, {App: "chat"}}}},
		&identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada-admin"}, Spec: identityv1alpha1.AppAssignmentSpec{
			UserRef: &identityv1alpha1.LocalObjectReference{Name: "ada"}, App: "chat", Entitlements: identityv1alpha1.Entitlements{AppRole: "admin"}}},
	}
	for i := range people {
		name := fmt.Sprintf("eng-%02d", i)
		title := "Engineer"
		if i >= people-40 {
			title = "Contractor"
		}
		if i == 0 {
			name = "ada"
		}
		u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: identityv1alpha1.UserSpec{UserName: name + "@example.com", Department: "eng", Title: title}}
		objs = append(objs, u)
	}
	env.Create(t, objs...)
	testenv.WaitFor(t, 90*time.Second, "every engineer's accounts active", func() (bool, string) {
		var users identityv1alpha1.UserList
		_ = env.Client.List(ctx, &users, client.InNamespace(ns))
		active := 0
		for _, u := range users.Items {
			for _, a := range u.Status.Accounts {
				if a.State == identityv1alpha1.AccountStateActive {
					active++
				}
			}
		}
		return active == 2*people, fmt.Sprintf("%d of %d accounts active", active, 2*people)
	})
	return ns
}

// manifests writes YAML documents into a directory for diff.
func manifests(t *testing.T, docs ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "change.yaml"), []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const engineeringRole = `apiVersion: identity.roster.dev/v1alpha1
kind: Role
metadata:
  name: engineering
spec:
  members:
    rule: '%s'
  grants:
    - app: wiki
      groups: [%s]
    - app: chat`

func TestViews(t *testing.T) {
	ns := organisation(t)
	// The AppConnections count their accounts a moment after the Users show them.
	var out string
	testenv.WaitFor(t, 60*time.Second, "status showing every account", func() (bool, string) {
		var code int
		out, code = roster(t, ns, "status")
		return code == exitOK && strings.Count(out, "48/0/0/0") == 2, out
	})
	mustContain(t, out, "app/wiki", "app/chat", "True", "Reconciled")

	out, _ = roster(t, ns, "who-has", "wiki", "--group", "engineers")
	golden(t, "who-has", out)
	mustContain(t, out, "ada@example.com", "eng-11@example.com", "Active", "engineers", "Role engineering")
	if n := strings.Count(out, "@example.com"); n != people {
		t.Errorf("who-has lists %d people, want %d:\n%s", n, people, out)
	}

	out, _ = roster(t, ns, "why", "ada", "chat")
	golden(t, "why", out)
	mustContain(t, out, "ada@example.com has chat because:",
		`member of the Role engineering (rule user.department == "eng"), through AppAssignment engineering-chat`, "the AppAssignment ada-admin")

	out, _ = roster(t, ns, "access", "ada@example.com")
	mustContain(t, out, "ada@example.com (ada): Active", "chat", "wiki", "engineers")
}

// The access diff of tricky changes, evaluated with the operator's code against the
// live namespace: a rule edit that takes 40 people out (held by wiki's threshold of 5
// and chat's default of 25),
// a renamed group, a new Role, and a change that changes nobody's access.
func TestDiff(t *testing.T) {
	ns := organisation(t)
	out, code := roster(t, ns, "diff", "-f", manifests(t, fmt.Sprintf(engineeringRole, `user.department == "eng" && user.title != "Contractor"`, "engineers")))
	if code != exitChanges {
		t.Fatalf("diff exit %d, want 1:\n%s", code, out)
	}
	golden(t, "diff-rule-edit", out)
	if n := strings.Count(out, " loses "); n != 80 {
		t.Errorf("%d losses, want 40 people × 2 apps:\n%s", n, out)
	}
	mustContain(t, out, "wiki   eng-47@example.com   loses    -groups engineers",
		"HELD chat: 40 deprovisions (with 0 already in the window) exceed the safety threshold (maxCount 25)",
		"HELD wiki: 40 deprovisions (with 0 already in the window) exceed the safety threshold (maxCount 5)")

	out, code = roster(t, ns, "diff", "-f", manifests(t, fmt.Sprintf(engineeringRole, `user.department == "eng"`, "engineering")), "-o", "json")
	golden(t, "diff-renamed-group.json", out)
	var d Diff
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != exitChanges {
		t.Fatalf("json diff (exit %d): %v\n%s", code, err, out)
	}
	if len(d.Changes) != people || d.Changes[0].What != "changes" || strings.Join(d.Changes[0].GroupsAdded, ",") != "engineering" ||
		strings.Join(d.Changes[0].GroupsRemoved, ",") != "engineers" || len(d.Held) != 0 {
		t.Fatalf("a renamed group: %+v", d)
	}

	out, code = roster(t, ns, "diff", "-o", "markdown", "-f", manifests(t, `apiVersion: identity.roster.dev/v1alpha1
kind: Role
metadata:
  name: admins
spec:
  members:
    users: [eng-01]
  grants:
    - app: crm
      license: enterprise`))
	if code != exitChanges {
		t.Fatalf("diff exit %d", code)
	}
	golden(t, "diff-new-role.md", out)
	mustContain(t, out, "**Roster access diff**: 1 gain, 0 lose, 0 change access.", "| crm | eng-01@example.com | gains | licence enterprise |")

	out, code = roster(t, ns, "diff", "-f", manifests(t, fmt.Sprintf(engineeringRole, `"eng" == user.department`, "engineers")))
	if code != exitOK || !strings.Contains(out, "No change to anyone's access.") {
		t.Fatalf("an equivalent rule: exit %d\n%s", code, out)
	}
	if _, code := roster(t, ns, "diff", "-f", manifests(t, "kind: Role\napiVersion: identity.roster.dev/v1alpha1\nmetadata: {name: x, namespace: elsewhere}")); code != exitError {
		t.Fatalf("a manifest of another namespace: exit %d, want 2", code)
	}
}

// The kill switch with --wait prints each app's time; a request made with the plugin
// is approved with it, as the person the API server authenticates.
func TestSuspendAndDecide(t *testing.T) {
	ns := organisation(t)
	out, code := roster(t, ns, "suspend", "eng-03", "--wait")
	if code != exitOK {
		t.Fatalf("suspend exit %d", code)
	}
	mustContain(t, out, "eng-03@example.com: state Suspended", "wiki: deactivated after", "chat: deactivated after", "every account off in")

	update := &identityv1alpha1.AppConnection{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "wiki"}, update); err != nil {
		t.Fatal(err)
	}
	update.Spec.Requestable = &identityv1alpha1.AppRequestPolicy{Groups: []string{"oncall"}}
	if err := env.Client.Update(context.Background(), update); err != nil {
		t.Fatal(err)
	}
	out, code = roster(t, ns, "request", "wiki", "--user", "ada", "--group", "oncall", "--for", "1h", "--reason", "pager week")
	if code != exitOK {
		t.Fatalf("request exit %d", code)
	}
	name := strings.TrimPrefix(strings.Fields(out)[0], "accessrequest/")
	var errs bytes.Buffer
	if code := Run(context.Background(), []string{"approve", name, "--comment", "ok", "--kubeconfig", bossConfig, "-n", ns}, &bytes.Buffer{}, &errs); code != exitOK {
		t.Fatalf("approve exit %d: %s", code, errs.String())
	}
	testenv.WaitFor(t, 60*time.Second, "the request granted", func() (bool, string) {
		ar := &identityv1alpha1.AccessRequest{}
		_ = env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ar)
		return ar.Status.Phase == identityv1alpha1.AccessRequestActive && len(ar.Spec.Decisions) == 1 && ar.Spec.Decisions[0].By == "boss@example.com" &&
			ar.Spec.Requester == "admin", fmt.Sprintf("%+v %+v", ar.Spec, ar.Status)
	})
	out, _ = roster(t, ns, "why", "ada", "wiki")
	mustContain(t, out, "groups engineers, oncall", "the AccessRequest "+name)
}

// hrOrganisation: five people from an HR export; the engineering Role gives wiki to
// the eng department.
func hrOrganisation(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ns := fmt.Sprintf("hr-%d", time.Now().UnixNano())
	csv := "id,firstName,lastName,email,department,division,employeeType\n" +
		"E1,Ada,Lovelace,ada@example.com,eng,eng,Employee\n" +
		"E2,Grace,Hopper,grace@example.com,eng,research,Employee\n" +
		"E3,Mary,Jackson,mary@example.com,sales,eng,Employee\n" +
		"E4,Katherine,Johnson,katherine@example.com,sales,sales,Employee\n" +
		"E5,Alan,Turing,alan@example.com,eng,eng,Contractor\n"
	env.Create(t,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"people.csv": csv}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Spec: identityv1alpha1.DirectorySyncSpec{
			HRIS: &identityv1alpha1.HRISSource{Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}}}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wiki"}, Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}}},
		&identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "engineering"}, Spec: identityv1alpha1.RoleSpec{
			Members: identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`}, Grants: []identityv1alpha1.RoleGrant{{App: "wiki"}}}},
	)
	testenv.WaitFor(t, 90*time.Second, "wiki accounts for the three engineers", func() (bool, string) {
		c := &identityv1alpha1.AppConnection{}
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wiki"}, c)
		return c.Status.Accounts.Managed == 3, fmt.Sprintf("%+v", c.Status.Accounts)
	})
	return ns
}

const hrSync = `apiVersion: identity.roster.dev/v1alpha1
kind: DirectorySync
metadata:
  name: hr
spec:
  hris:
    format: CSV
    configMapRef: {name: hr, key: people.csv}
%s`

// The access diff of a DirectorySync change, which the operator evaluates over the
// records it holds: department from another column and contractors filtered out move
// wiki from grace and alan to mary; the preview is deleted once read; an equivalent
// manifest changes nothing; a filter that does not compile is an error.
func TestDirectoryDiff(t *testing.T) {
	ns := hrOrganisation(t)
	out, code := roster(t, ns, "diff", "-f", manifests(t, fmt.Sprintf(hrSync, `  filter: record.employeeType != "Contractor"
  mapping:
    - target: department
      expression: record.division`)))
	if code != exitChanges {
		t.Fatalf("diff exit %d, want 1:\n%s", code, out)
	}
	golden(t, "diff-directory", out)
	mustContain(t, out, "DirectorySync hr: 0 Users created, 2 updated, 1 suspended, 0 deleted, 0 skipped (over 5 records)",
		"wiki   alan@example.com    loses", "wiki   grace@example.com   loses", "wiki   mary@example.com    gains")
	var previews identityv1alpha1.DirectorySyncPreviewList
	if err := env.Client.List(context.Background(), &previews, client.InNamespace(ns)); err != nil || len(previews.Items) != 0 {
		t.Errorf("previews left behind: %v %+v", err, previews.Items)
	}
	if out, code := roster(t, ns, "diff", "-f", manifests(t, fmt.Sprintf(hrSync, ""))); code != exitOK || !strings.Contains(out, "No change") {
		t.Errorf("the live DirectorySync: exit %d\n%s", code, out)
	}
	var errs bytes.Buffer
	bad := manifests(t, fmt.Sprintf(hrSync, "  filter: record.employeeType =="))
	if code := Run(context.Background(), []string{"diff", "-f", bad, "--kubeconfig", kubeconfig, "-n", ns}, &bytes.Buffer{}, &errs); code != exitError ||
		!strings.Contains(errs.String(), "the preview was refused: ") || !strings.Contains(errs.String(), "filter does not compile") {
		t.Errorf("a filter that does not compile: exit %d: %s", code, errs.String())
	}
}
