// Package demo is make demo: a control plane, the operator, two apps and an
// organisation of 50 people, and the story of a joiner, a leaver and a mover told in the
// terminal.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

const (
	namespace = "acme"
	chatToken = "demo-chat-token-not-a-secret"
	chatAddr  = "127.0.0.1:18080"
	// stepTimeout bounds each step of the story.
	stepTimeout = 3 * time.Minute
)

// Options configure a run.
type Options struct {
	// Once tells the story and returns; otherwise Run keeps everything up until ctx ends.
	Once bool
	Out  io.Writer
	// Dir receives the kubeconfig; "" means bin/demo in the repository.
	Dir string
}

// demo holds what the demo started.
type demo struct {
	opts  Options
	out   io.Writer
	tty   bool // redraw a progress line; otherwise print only results
	env   *testenv.Env
	k8s   client.Client
	chat  *scim.MemoryStore
	wiki  *memory.App
	slack chan string // what the Slack channel shows, message by message
	start time.Time
}

// Run starts everything, tells the story, and stops everything it started.
func Run(ctx context.Context, opts Options) error {
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	d := &demo{opts: opts, out: opts.Out, start: time.Now(), tty: isTerminal(opts.Out)}
	ctrl.SetLogger(logr.Discard())
	d.say("Roster demo: an organisation of 50 people, two apps, one operator.\n\n")

	var err error
	if err = d.progress(ctx, "Starting kube-apiserver v1.37.0 and etcd", func() (bool, string, error) {
		d.env, err = testenv.Start()
		return true, "", err
	}); err != nil {
		return err
	}
	defer func() { _ = d.env.Stop() }()
	d.k8s = d.env.Client

	chatURL, stopChat, err := d.startChat()
	if err != nil {
		return err
	}
	defer stopChat()
	slackURL, stopSlack, err := d.startSlack()
	if err != nil {
		return err
	}
	defer stopSlack()
	ctx, stopOperator := context.WithCancel(ctx)
	defer stopOperator()
	if err := d.startOperator(ctx); err != nil {
		return err
	}
	d.say("  ✓ Control plane up, CRDs installed, operator running\n")
	d.say("  ✓ Apps: chat (SCIM 2.0 at %s), wiki (in memory)\n\n", chatURL)

	if err := d.applySamples(ctx, chatURL, slackURL); err != nil {
		return err
	}
	steps := []func(context.Context) error{d.joiners, d.leaver, d.mover, d.accessRequest, d.adminView}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	d.say("\nEvery step converged in %s.\n", time.Since(d.start).Round(time.Second))
	if opts.Once {
		return nil
	}
	kubeconfig, err := d.writeKubeConfig()
	if err != nil {
		return err
	}
	d.say("\nTry it, in another terminal:\n")
	d.say("  export KUBECONFIG=%s\n", kubeconfig)
	d.say("  kubectl get roster -n acme\n")
	d.say("  kubectl get ruser -n acme -L identity.roster.dev/department\n")
	d.say("  kubectl describe appconnection chat -n acme\n")
	d.say("  kubectl annotate appconnection chat -n acme identity.roster.dev/paused=true\n")
	d.say("  kubectl get accessrequests,notifiers -n acme\n")
	d.say("\nRunning until Ctrl-C.\n")
	<-ctx.Done()
	d.say("\nStopping.\n")
	return nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// progress shows a spinner line while check is false, then a tick. It checks every
// 10ms, so that the times it reports are close to the truth, and redraws every 100ms.
func (d *demo) progress(ctx context.Context, what string, check func() (bool, string, error)) error {
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	start := time.Now()
	deadline := start.Add(stepTimeout)
	lastDraw := time.Time{}
	for i := 0; ; i++ {
		done, detail, err := check()
		if err != nil {
			fmt.Fprintf(d.out, "\r\033[K  ✗ %s: %v\n", what, err)
			return err
		}
		if done {
			fmt.Fprintf(d.out, "\r\033[K  ✓ %s (%s)\n", what, time.Since(start).Round(10*time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(d.out, "\r\033[K  ✗ %s: not done after %s (%s)\n", what, stepTimeout, detail)
			return fmt.Errorf("%s did not converge: %s", what, detail)
		}
		if d.tty && time.Since(lastDraw) >= 100*time.Millisecond {
			fmt.Fprintf(d.out, "\r\033[K  %s %s… %s", frames[i%len(frames)], what, detail)
			lastDraw = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// startChat starts the chat app: Roster's own SCIM server over a memory store.
func (d *demo) startChat() (string, func(), error) {
	d.chat = scim.NewMemoryStore()
	handler := http.StripPrefix("/scim/v2", scim.NewServer(scim.ServerOptions{Store: d.chat, Authorize: func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer "+chatToken
	}}))
	l, err := net.Listen("tcp", chatAddr)
	if err != nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", nil, err
		}
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String() + "/scim/v2", func() { _ = srv.Close() }, nil
}

func (d *demo) startOperator(ctx context.Context) error {
	mgr, err := ctrl.NewManager(d.env.Config, controllers.ManagerOptions(ctrl.Options{
		Scheme: d.env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	}))
	if err != nil {
		return err
	}
	apps := memory.NewApps()
	d.wiki = apps.Get("demo-wiki")
	registry := controllers.Connectors(apps, nil)
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registry: registry}); err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("the operator's caches did not sync")
	}
	return nil
}

// applySamples applies config/samples/demo, pointing chat and Slack at the stand-ins the
// demo started.
func (d *demo) applySamples(ctx context.Context, chatURL, slackURL string) error {
	dir := filepath.Join(testenv.RepoRoot(), "config", "samples", "demo")
	objs, err := readObjects(dir)
	if err != nil {
		return err
	}
	d.say("Applying config/samples/demo: %d objects (an HR export of 50 people, 5 Roles, 2 AppConnections, 1 DirectorySync, 1 Notifier)\n", len(objs))
	for _, obj := range objs {
		if obj.GetKind() == "AppConnection" && obj.GetName() == "chat" {
			_ = unstructured.SetNestedField(obj.Object, chatURL, "spec", "scim", "baseURL")
		}
		if obj.GetKind() == "Secret" && obj.GetName() == "slack-it-requests" {
			_ = unstructured.SetNestedField(obj.Object, slackURL, "stringData", "url")
		}
		if err := d.k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("roster-demo"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// account is one person's account in the demo's two apps.
type account struct {
	chat, wiki         string // "active", "inactive" or ""
	chatID, wikiID     string
	chatGroups, wikiGr []string
}

// accounts reads both apps, by userName.
func (d *demo) accounts(ctx context.Context) map[string]*account {
	out := map[string]*account{}
	get := func(userName string) *account {
		a := out[strings.ToLower(userName)]
		if a == nil {
			a = &account{}
			out[strings.ToLower(userName)] = a
		}
		return a
	}
	users, _ := d.chat.List(ctx, scim.Users, nil)
	byID := map[string]string{}
	for _, u := range users {
		name, _ := u["userName"].(string)
		byID[u.ID()] = name
		get(name).chat, get(name).chatID = activeWord(u.Active()), u.ID()
	}
	groups, _ := d.chat.List(ctx, scim.Groups, nil)
	for _, g := range groups {
		members, _ := g["members"].([]any)
		for _, m := range members {
			if name := byID[m.(map[string]any)["value"].(string)]; name != "" {
				get(name).chatGroups = append(get(name).chatGroups, g["displayName"].(string))
			}
		}
	}
	wikiByID := map[string]string{}
	for _, acc := range d.wiki.Accounts() {
		wikiByID[acc.ID] = acc.UserName()
		get(acc.UserName()).wiki, get(acc.UserName()).wikiID = activeWord(acc.Active), acc.ID
	}
	for _, g := range d.wiki.Groups() {
		for _, m := range g.Members {
			if name := wikiByID[m]; name != "" {
				get(name).wikiGr = append(get(name).wikiGr, g.DisplayName)
			}
		}
	}
	for _, a := range out {
		sort.Strings(a.chatGroups)
		sort.Strings(a.wikiGr)
	}
	return out
}

func activeWord(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

// users reads the organisation's Users.
func (d *demo) users(ctx context.Context) []identityv1alpha1.User {
	var list identityv1alpha1.UserList
	_ = d.k8s.List(ctx, &list, client.InNamespace(namespace))
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Spec.UserName < list.Items[j].Spec.UserName })
	return list.Items
}

// wantGroups is what the demo's Roles give a department in each app.
func wantGroups(department string) (chat, wiki []string) {
	chat = []string{"all-hands", department}
	switch department {
	case "engineering":
		wiki = []string{"engineers"}
	case "sales", "support":
		wiki = []string{department}
	}
	sort.Strings(chat)
	return chat, wiki
}

func (d *demo) joiners(ctx context.Context) error {
	d.say("\n1. Joiners: HR's 50 people become Users, and Roles give them accounts.\n")
	err := d.progress(ctx, "Provisioning accounts", func() (bool, string, error) {
		users := d.users(ctx)
		accounts := d.accounts(ctx)
		done := 0
		for _, u := range users {
			a := accounts[strings.ToLower(u.Spec.UserName)]
			chat, wiki := wantGroups(u.Spec.Department)
			if a != nil && a.chat == "active" && equal(a.chatGroups, chat) && (len(wiki) == 0 || (a.wiki == "active" && equal(a.wikiGr, wiki))) && isReady(u) {
				done++
			}
		}
		return len(users) == 50 && done == 50, fmt.Sprintf("%d/50 people with every account", done), nil
	})
	if err != nil {
		return err
	}
	d.table(ctx)
	return nil
}

func isReady(u identityv1alpha1.User) bool {
	return meta.IsStatusConditionTrue(u.Status.Conditions, identityv1alpha1.ConditionReady)
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func (d *demo) table(ctx context.Context) {
	accounts := d.accounts(ctx)
	d.say("\n  %-34s %-12s %-32s %s\n", "USER", "DEPARTMENT", "CHAT (SCIM)", "WIKI (memory)")
	for _, u := range d.users(ctx) {
		a := accounts[strings.ToLower(u.Spec.UserName)]
		chat, wiki := "-", "-"
		if a != nil && a.chat != "" {
			chat = a.chat + " " + strings.Join(a.chatGroups, ",")
		}
		if a != nil && a.wiki != "" {
			wiki = a.wiki + " " + strings.Join(a.wikiGr, ",")
		}
		d.say("  %-34s %-12s %-32s %s\n", u.Spec.UserName, u.Spec.Department, chat, wiki)
	}
}

// editExport changes one row of the HR export, as the HR system's next export would.
func (d *demo) editExport(ctx context.Context, id string, change func(fields []string) []string) error {
	cm := &corev1.ConfigMap{}
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "people"}, cm); err != nil {
		return err
	}
	lines := strings.Split(cm.Data["people.csv"], "\n")
	for i, line := range lines {
		if fields := strings.Split(line, ","); fields[0] == id {
			lines[i] = strings.Join(change(fields), ",")
		}
	}
	cm.Data["people.csv"] = strings.Join(lines, "\n")
	return d.k8s.Update(ctx, cm)
}

func (d *demo) leaver(ctx context.Context) error {
	const id, email = "E1003", "alan.turing@acme.example"
	d.say("\n2. A leaver: HR marks %s terminated.\n", email)
	start := time.Now()
	if err := d.editExport(ctx, id, func(f []string) []string { f[9] = "terminated"; return f }); err != nil {
		return err
	}
	var chatOff, wikiOff time.Duration
	err := d.progress(ctx, "Deactivating every account", func() (bool, string, error) {
		a := d.accounts(ctx)[email]
		if a.chat == "inactive" && chatOff == 0 {
			chatOff = time.Since(start)
		}
		if a.wiki == "inactive" && wikiOff == 0 {
			wikiOff = time.Since(start)
		}
		return chatOff > 0 && wikiOff > 0, fmt.Sprintf("chat %s, wiki %s", a.chat, a.wiki), nil
	})
	if err != nil {
		return err
	}
	d.say("  chat deactivated %s after the export changed, wiki %s: every account off in %s.\n",
		chatOff.Round(time.Millisecond), wikiOff.Round(time.Millisecond), max(chatOff, wikiOff).Round(time.Millisecond))
	return nil
}

func (d *demo) mover(ctx context.Context) error {
	const id, email = "E1025", "adele.goldberg@acme.example"
	before := *d.accounts(ctx)[email]
	d.say("\n3. A mover: %s moves from sales to engineering.\n", email)
	if err := d.editExport(ctx, id, func(f []string) []string { f[4] = "engineering"; return f }); err != nil {
		return err
	}
	chatWant, wikiWant := wantGroups("engineering")
	var after account
	err := d.progress(ctx, "Moving groups in both apps", func() (bool, string, error) {
		after = *d.accounts(ctx)[email]
		return equal(after.chatGroups, chatWant) && equal(after.wikiGr, wikiWant),
			fmt.Sprintf("chat %v, wiki %v", after.chatGroups, after.wikiGr), nil
	})
	if err != nil {
		return err
	}
	if after.chatID != before.chatID || after.wikiID != before.wikiID {
		return fmt.Errorf("moving %s recreated an account", email)
	}
	d.say("  chat: %s\n  wiki: %s\n  Same accounts, same ids: nothing was recreated.\n", diff(before.chatGroups, after.chatGroups), diff(before.wikiGr, after.wikiGr))
	return nil
}

func diff(before, after []string) string {
	var parts []string
	for _, g := range before {
		if !contains(after, g) {
			parts = append(parts, "removed from "+g)
		}
	}
	for _, g := range after {
		if !contains(before, g) {
			parts = append(parts, "added to "+g)
		}
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func (d *demo) writeKubeConfig() (string, error) {
	data, err := d.env.AdminKubeConfig()
	if err != nil {
		return "", err
	}
	dir := d.opts.Dir
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "bin", "demo")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}
