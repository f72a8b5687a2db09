package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers"
)

// steadyState asks every AppConnection and the DirectorySync for a full resync with
// nothing changed, twice, and counts what the second one writes: to the apps, and to the
// API server. (The first can write once to the DirectorySync's status: its counts of
// what the last sync did drop from the initial sync's to none.) Each count waits until
// no write has come for longer than the operator defers its status writes and Event
// summaries, so that the tail of what came before is not counted as the resync's.
func (b *bench) steadyState(ctx context.Context) error {
	quiet, err := b.statusSettlesWithin(ctx)
	if err != nil {
		return err
	}
	start, err := b.counts(ctx, quiet)
	if err != nil {
		return err
	}
	first, mid, err := b.resync(ctx, start, quiet)
	if err != nil {
		return err
	}
	second, _, err := b.resync(ctx, mid, quiet)
	if err != nil {
		return err
	}
	people := func(k writeKey) bool {
		return k.resource == "users" || k.resource == "roles" || k.resource == "appassignments" || k.resource == "events"
	}
	all := func(writeKey) bool { return true }
	details := map[string]float64{"firstResyncWrites": first.api.sum(all)}
	for k, n := range first.api {
		if n != 0 {
			details["firstResync:"+k.String()] = n
		}
	}
	for k, n := range second.api {
		if n != 0 {
			details[k.String()] = n
		}
	}
	// An Event series the events library closes (six minutes after its last word) is a
	// write that may change nothing; the Events that did change tell the two apart.
	details["eventsChanged"] = 0
	for what, n := range second.events {
		details["event:"+what] = n
		details["eventsChanged"] += n
	}
	b.report.add(atMost("steady state", "app writes in a full resync", second.appWrites, 0, "", map[string]float64{"firstResync": first.appWrites}))
	b.report.add(atMost("steady state", "app reads other than list pages", second.otherReads, 0, "",
		map[string]float64{"listPages": second.pages, "firstResyncOtherReads": first.otherReads}))
	b.report.add(atMost("steady state", "API writes to Users, Roles, AppAssignments, Events", second.api.sum(people), 0, "",
		map[string]float64{"firstResync": first.api.sum(people)}))
	b.report.add(atMost("steady state", "API writes in all", second.api.sum(all), 0, "", details))
	b.logf("  resync: %v app writes, %v list pages, %v other reads, %v API writes (the first resync: %v)\n",
		second.appWrites, second.pages, second.otherReads, second.api.sum(all), first.api.sum(all))
	return nil
}

// resyncCost is what one full resync wrote and read.
type resyncCost struct {
	appWrites, pages, otherReads float64
	api                          writes
	// events counts the Events written during the resync by regarded kind and reason.
	events map[string]float64
}

// resync asks for a full resync of every AppConnection and DirectorySync of the
// organisation by annotation, waits until each has run and the API server is quiet, and
// counts the requests since before; it returns the counts after, for the next.
func (b *bench) resync(ctx context.Context, before counted, quiet time.Duration) (resyncCost, counted, error) {
	var cost resyncCost
	trigger := time.Now().Truncate(time.Second)
	objs := []client.Object{&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: orgNamespace, Name: "hr"}}}
	for _, name := range appNames(b.opts.Apps) {
		objs = append(objs, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: orgNamespace, Name: name}})
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`,
		identityv1alpha1.AnnotationResync, time.Now().Format(time.RFC3339Nano)))
	for _, obj := range objs {
		if err := b.env.Client.Patch(ctx, obj, patch); err != nil {
			return cost, before, err
		}
	}
	if err := b.waitFor(ctx, timeoutFor(b.opts.Users), 100*time.Millisecond, "the full resync", func() (bool, string, error) {
		return resyncedSince(trigger, objs)
	}); err != nil {
		return cost, before, err
	}
	after, err := b.counts(ctx, quiet)
	if err != nil {
		return cost, before, err
	}
	for _, name := range appNames(b.opts.Apps) {
		x, y := before.apps[name], after.apps[name]
		cost.appWrites += float64((y.Total() - y.Reads()) - (x.Total() - x.Reads()))
		pages := float64(y.Requests["GET /Users"] + y.Requests["GET /Groups"] - x.Requests["GET /Users"] - x.Requests["GET /Groups"])
		cost.pages += pages
		cost.otherReads += float64(y.Reads()-x.Reads()) - pages
	}
	cost.api = after.api.minus(before.api)
	if cost.events, err = b.eventsWrittenSince(ctx, trigger); err != nil {
		return cost, after, err
	}
	// Less the bench's own annotations.
	cost.api.add(identityv1alpha1.GroupVersion.Group, "appconnections", "", -float64(b.opts.Apps))
	cost.api.add(identityv1alpha1.GroupVersion.Group, "directorysyncs", "", -1)
	return cost, after, nil
}

// eventsWrittenSince counts the organisation's Events written (created, or updated as
// a series) since t, by the kind of object they regard and their reason.
func (b *bench) eventsWrittenSince(ctx context.Context, t time.Time) (map[string]float64, error) {
	var list eventsv1.EventList
	if err := b.env.Client.List(ctx, &list, client.InNamespace(orgNamespace)); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, e := range list.Items {
		for _, m := range e.ManagedFields {
			if m.Time != nil && !m.Time.Time.Before(t) {
				out[e.Regarding.Kind+"/"+e.Reason]++
				break
			}
		}
	}
	return out, nil
}

// counted is what the API server and the apps have seen at one point.
type counted struct {
	api  writes
	apps map[string]AppStats
}

// counts are the API server's writes, once no write has come for quiet, and what the
// apps have seen.
func (b *bench) counts(ctx context.Context, quiet time.Duration) (counted, error) {
	api, err := b.settledWrites(ctx, quiet)
	if err != nil {
		return counted{}, err
	}
	apps, err := b.apps.stats()
	return counted{api, apps}, err
}

// statusSettlesWithin is how long the operator may defer a status write or an Event
// summary in this organisation, by its largest Role and its apps' accounts, and two
// seconds more.
func (b *bench) statusSettlesWithin(ctx context.Context) (time.Duration, error) {
	var roles identityv1alpha1.RoleList
	if err := b.env.Client.List(ctx, &roles, client.InNamespace(orgNamespace)); err != nil {
		return 0, err
	}
	largest := 0
	for _, r := range roles.Items {
		largest = max(largest, int(r.Status.MemberCount))
	}
	return controllers.StatusSettlesWithin(largest, b.opts.Users) + 2*time.Second, nil
}

// resyncedSince reports whether every engine listed its app and every directory syncer
// synced in full since t, by the operator's metrics, for these objects (series of an
// earlier run in this process, of objects since deleted, stay in the registry).
func resyncedSince(t time.Time, objs []client.Object) (bool, string, error) {
	keys := map[string]bool{}
	for _, obj := range objs {
		keys[client.ObjectKeyFromObject(obj).String()] = true
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		return false, "", err
	}
	for _, f := range families {
		switch f.GetName() {
		case "roster_last_full_sync_timestamp_seconds", "roster_directory_last_sync_timestamp_seconds":
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() < float64(t.Unix()) && ofObjects(m.GetLabel(), keys) {
				return false, fmt.Sprintf("%s %v", f.GetName(), m.GetLabel()), nil
			}
		}
	}
	return true, "", nil
}

// ofObjects says whether a series' labels name one of the objects.
func ofObjects(labels []*dto.LabelPair, keys map[string]bool) bool {
	for _, l := range labels {
		if keys[l.GetValue()] {
			return true
		}
	}
	return false
}

func appNames(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = appName(i)
	}
	return out
}

// writeKey is an API resource, as the API server's request metrics label it.
type writeKey struct{ group, resource, subresource string }

func (k writeKey) String() string {
	s := k.resource
	if k.group != "" {
		s += "." + k.group
	}
	if k.subresource != "" {
		s += "/" + k.subresource
	}
	return s
}

// writes counts the API server's write requests by resource.
type writes map[writeKey]float64

func (w writes) add(group, resource, subresource string, n float64) {
	w[writeKey{group, resource, subresource}] += n
}

func (w writes) minus(before writes) writes {
	out := writes{}
	for k, n := range w {
		if d := n - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func (w writes) sum(match func(writeKey) bool) float64 {
	var n float64
	for k, v := range w {
		if match(k) {
			n += v
		}
	}
	return n
}

var metricLine = regexp.MustCompile(`^apiserver_request_total\{(.*)\} ([0-9.e+]+)$`)
var metricLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// apiWrites reads the API server's count of write requests, leaving out leases (the
// API server's own heartbeats).
func (b *bench) apiWrites(ctx context.Context) (writes, error) {
	page, err := b.apiServerPage(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	defer page.Close()
	body, err := io.ReadAll(page)
	if err != nil {
		return nil, err
	}
	out := writes{}
	s := bufio.NewScanner(bytes.NewReader(body))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		m := metricLine.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range metricLabel.FindAllStringSubmatch(m[1], -1) {
			labels[l[1]] = l[2]
		}
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		default:
			continue
		}
		if labels["resource"] == "leases" {
			continue
		}
		n, _ := strconv.ParseFloat(m[2], 64)
		out.add(labels["group"], labels["resource"], labels["subresource"], n)
	}
	return out, s.Err()
}

// apiServerPage asks the API server for one of its own pages: metrics, profiles.
func (b *bench) apiServerPage(ctx context.Context, path string) (io.ReadCloser, error) {
	hc, err := rest.HTTPClientFor(b.env.Config)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(b.env.Config.Host, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// settledWrites waits until the API server has seen no write for quiet, and returns
// its counts.
func (b *bench) settledWrites(ctx context.Context, quiet time.Duration) (writes, error) {
	var last writes
	var lastTotal float64 = -1
	stableSince := time.Now()
	err := b.waitFor(ctx, 5*time.Minute, 250*time.Millisecond, "the API server settling", func() (bool, string, error) {
		w, err := b.apiWrites(ctx)
		if err != nil {
			return false, "", err
		}
		total := w.sum(func(writeKey) bool { return true })
		if total != lastTotal {
			last, lastTotal, stableSince = w, total, time.Now()
		}
		return time.Since(stableSince) >= quiet, fmt.Sprintf("%v writes", total), nil
	})
	return last, err
}
