package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/cmd/kubectl-roster/plugin"
	"github.com/rosterhq/roster/test/testenv"
)

const (
	slackAddr = "127.0.0.1:18081"
	// requestFor is how long the demo's request lasts: long enough to see it granted,
	// short enough to see it expire.
	requestFor = 20 * time.Second
)

// startSlack stands in for Slack's incoming webhook: it takes Block Kit messages and
// hands them, drawn as the channel would show them, to the story.
func (d *demo) startSlack() (string, func(), error) {
	l, err := net.Listen("tcp", slackAddr)
	if err != nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", nil, err
		}
	}
	d.slack = make(chan string, 16)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		select {
		case d.slack <- drawSlack(body, d.tty):
		default:
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String() + "/services/T0DEMO/B0DEMO/demo", func() { _ = srv.Close() }, nil
}

// drawSlack draws a Block Kit message as Slack lays it out, in a box, its title bold on
// a terminal.
func drawSlack(body []byte, tty bool) string {
	bold, faint, plain := "\033[1m", "\033[2m", "\033[0m"
	if !tty {
		bold, faint, plain = "", "", ""
	}
	var m struct {
		Blocks []struct {
			Type     string
			Text     struct{ Text string }
			Fields   []struct{ Text string }
			Elements []struct{ Text string }
		}
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "  (not a Block Kit message: " + err.Error() + ")\n"
	}
	unescape := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "```", "", "*", "")
	var lines []string
	for _, b := range m.Blocks {
		switch b.Type {
		case "header":
			lines = append(lines, bold+b.Text.Text+plain)
		case "section":
			if b.Text.Text != "" {
				lines = append(lines, strings.Split(unescape.Replace(b.Text.Text), "\n")...)
			}
			var fields []string
			for _, f := range b.Fields {
				fields = append(fields, strings.ReplaceAll(unescape.Replace(f.Text), "\n", ": "))
			}
			if len(fields) > 0 {
				lines = append(lines, strings.Join(fields, " · "))
			}
		case "context":
			for _, e := range b.Elements {
				lines = append(lines, faint+unescape.Replace(e.Text)+plain)
			}
		}
	}
	var out strings.Builder
	out.WriteString("  ┌─ Slack · #it-requests\n")
	for _, l := range lines {
		fmt.Fprintf(&out, "  │ %s\n", l)
	}
	out.WriteString("  └─\n")
	return out.String()
}

// showSlack prints the next message the channel got.
func (d *demo) showSlack(ctx context.Context) error {
	select {
	case m := <-d.slack:
		d.say("%s", m)
		return nil
	case <-time.After(stepTimeout):
		return errors.New("no Slack message came")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// installApprovals puts in place what makes decisions on access requests authenticated:
// the access-requests admission policy and the requester's ClusterRole, as config/rbac
// has them, named as the install names them.
func (d *demo) installApprovals(ctx context.Context) error {
	objs, err := readObjects(filepath.Join(testenv.RepoRoot(), "config", "rbac"), "access_request_policy.yaml")
	if err != nil {
		return err
	}
	for _, obj := range objs {
		obj.SetName("roster-" + obj.GetName())
		if err := d.k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("roster-demo"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// person is a client of someone the API server authenticates by their own certificate.
func (d *demo) person(userName string) (client.Client, error) {
	cfg, err := d.env.UserConfig(userName)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: d.env.Scheme})
}

func (d *demo) userNamed(ctx context.Context, userName string) (*identityv1alpha1.User, error) {
	for _, u := range d.users(ctx) {
		if u.Spec.UserName == userName {
			return &u, nil
		}
	}
	return nil, fmt.Errorf("no User %s", userName)
}

// accessRequest: a person in finance asks for the wiki's quarter-close space; her
// manager, and only she, approves; the access comes and goes on time.
func (d *demo) accessRequest(ctx context.Context) error {
	const asker, manager = "susan.kare@acme.example", "rachel.carson@acme.example"
	susan, err := d.userNamed(ctx, asker)
	if err != nil {
		return err
	}
	d.say("\n4. An access request: %s (finance) asks for the wiki's quarter-close space for %s.\n", asker, requestFor)
	if err := d.installApprovals(ctx); err != nil {
		return err
	}
	if err := d.k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "everyone-may-ask"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "roster-access-requester"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:authenticated"}}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	asSusan, err := d.person(asker)
	if err != nil {
		return err
	}
	asRachel, err := d.person(manager)
	if err != nil {
		return err
	}
	request := &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "susan-quarter-close"},
		Spec: identityv1alpha1.AccessRequestSpec{UserRef: identityv1alpha1.LocalObjectReference{Name: susan.Name}, Requester: asker,
			App: "wiki", Entitlements: identityv1alpha1.Entitlements{Groups: []string{"quarter-close"}},
			Duration: metav1.Duration{Duration: requestFor}, Justification: "Quarter close: reconciling the Q4 reports"}}
	if err := d.untilPolicyLoaded(ctx, asSusan, request); err != nil {
		return err
	}
	if err := asSusan.Create(ctx, request); err != nil {
		return fmt.Errorf("%s could not ask: %w", asker, err)
	}
	key := types.NamespacedName{Namespace: namespace, Name: request.Name}
	ar := &identityv1alpha1.AccessRequest{}
	if err := d.progress(ctx, "Requested, waiting for the manager", func() (bool, string, error) {
		err := d.k8s.Get(ctx, key, ar)
		return len(ar.Status.Approvers) > 0, string(ar.Status.Phase), client.IgnoreNotFound(err)
	}); err != nil {
		return err
	}
	if err := d.showSlack(ctx); err != nil {
		return err
	}
	err = decide(ctx, asSusan, key, asker, identityv1alpha1.DecisionApprove)
	d.say("  %s approves her own request: refused by the API server (%s)\n", asker, afterColon(err))
	if err == nil {
		return errors.New("a requester approved her own request")
	}
	if err := d.retry(ctx, func() error { return decide(ctx, asRachel, key, manager, identityv1alpha1.DecisionApprove) }); err != nil {
		return fmt.Errorf("%s could not approve: %w", manager, err)
	}
	if err := d.showSlack(ctx); err != nil {
		return err
	}
	if err := d.progress(ctx, "Granting the wiki's quarter-close space", func() (bool, string, error) {
		err := d.k8s.Get(ctx, key, ar)
		return ar.Status.Phase == identityv1alpha1.AccessRequestActive, string(ar.Status.Phase), err
	}); err != nil {
		return err
	}
	a := d.accounts(ctx)[asker]
	d.say("  Approved by %s, as the API server authenticated her; wiki %s in %v until %s.\n",
		ar.Status.Decisions[len(ar.Status.Decisions)-1].By, a.wiki, a.wikiGr, ar.Status.ExpiryTime.Format(time.TimeOnly))
	expiry := ar.Status.ExpiryTime.Time
	var off time.Time
	if err := d.progress(ctx, "Waiting for the access to expire", func() (bool, string, error) {
		if a := d.accounts(ctx)[asker]; a.wiki == "inactive" && off.IsZero() {
			off = time.Now()
		}
		err := d.k8s.Get(ctx, key, ar)
		return !off.IsZero() && ar.Status.Phase == identityv1alpha1.AccessRequestExpired, fmt.Sprintf("expires in %s", time.Until(expiry).Round(time.Second)), err
	}); err != nil {
		return err
	}
	d.say("  Expired at %s; the wiki account was deactivated %s later.\n", expiry.Format(time.TimeOnly), off.Sub(expiry).Round(time.Millisecond))
	return d.showSlack(ctx)
}

// untilPolicyLoaded waits for the API server to enforce the admission policy, which it
// loads a moment after it is created: until then a request in another's name would pass.
func (d *demo) untilPolicyLoaded(ctx context.Context, c client.Client, request *identityv1alpha1.AccessRequest) error {
	probe := request.DeepCopy()
	probe.Spec.Requester = "someone-else"
	return d.progress(ctx, "Loading the access-requests admission policy", func() (bool, string, error) {
		err := c.Create(ctx, probe, client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "set spec.requester to"), "", nil
	})
}

// retry repeats f while the API server has not yet seen the approver's new RoleBinding.
func (d *demo) retry(ctx context.Context, f func() error) error {
	var err error
	for range 50 {
		if err = f(); !apierrors.IsForbidden(err) && !strings.Contains(fmt.Sprint(err), "may not decide") {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// decide adds a decision as the documented kubectl patch does.
func decide(ctx context.Context, c client.Client, key types.NamespacedName, by string, decision identityv1alpha1.Decision) error {
	patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/decisions/-", "value": map[string]any{"by": by, "decision": decision}}})
	return c.Patch(ctx, &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}},
		client.RawPatch(types.JSONPatchType, patch))
}

func afterColon(err error) string {
	if err == nil {
		return "not refused"
	}
	msg := err.Error()
	if _, why, found := strings.Cut(msg, "denied request: "); found {
		return why
	}
	return msg
}

// financeWiki is the change the demo reviews with kubectl roster diff: finance gets the
// wiki too.
const financeWiki = `apiVersion: identity.roster.dev/v1alpha1
kind: Role
metadata:
  name: finance
  namespace: acme
spec:
  members:
    rule: user.department == "finance"
  grants:
    - app: chat
      groups: [finance]
    - app: wiki
      groups: [finance]
`

// lisbonFilter is a DirectorySync change the demo reviews: the HR sync leaves out the
// Lisbon office.
const lisbonFilter = `apiVersion: identity.roster.dev/v1alpha1
kind: DirectorySync
metadata:
  name: hr
  namespace: acme
spec:
  hris:
    format: CSV
    configMapRef:
      name: people
      key: people.csv
  interval: 1h
  vanishedUsers:
    action: Suspend
    deleteAfter: 720h
  filter: record.location != "Lisbon"
`

// adminView shows what kubectl roster tells an admin about the demo's organisation.
func (d *demo) adminView(ctx context.Context) error {
	kubeconfig, err := d.writeKubeConfig()
	if err != nil {
		return err
	}
	dir := filepath.Dir(kubeconfig)
	roleChange, syncChange := filepath.Join(dir, "finance-wiki.yaml"), filepath.Join(dir, "hr-without-lisbon.yaml")
	for path, manifest := range map[string]string{roleChange: financeWiki, syncChange: lisbonFilter} {
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			return err
		}
	}
	d.say("\n5. The admin's view, with kubectl roster (bin/kubectl-roster): status, why, and the access diff of two\n" +
		"   changes before they merge: finance gets the wiki; the HR sync leaves out the Lisbon office.\n")
	for _, args := range [][]string{{"status"}, {"why", "adele.goldberg@acme.example"}, {"diff", "-f", roleChange}, {"diff", "-f", syncChange}} {
		d.say("\n$ kubectl roster %s -n %s\n", strings.Join(args, " "), namespace)
		var out, errs strings.Builder
		code := plugin.Run(ctx, append(args, "--kubeconfig", kubeconfig, "-n", namespace), &out, &errs)
		d.say("%s", out.String())
		if code == 2 {
			return fmt.Errorf("kubectl roster %s: %s", args[0], errs.String())
		}
	}
	return nil
}
