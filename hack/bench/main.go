// Command bench is make bench: it measures how fast Roster converges and what it costs,
// prints a table and writes bench/results.json. --quick is the small run make test
// makes.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rosterhq/roster/test/bench"
)

func main() {
	bench.ServeIfChild()
	var opts bench.Options
	flag.BoolVar(&opts.Quick, "quick", false, "a small run: 200 users, 10 leavers, short rate and inbound scenarios")
	flag.IntVar(&opts.Users, "users", 0, "Users in the organisation (default 10000, quick 200)")
	flag.IntVar(&opts.Apps, "apps", 0, "SCIM apps every User has an account in (default 5)")
	flag.IntVar(&opts.Concurrency, "concurrency", 0, "requests in flight per app, for Roster and the floor (default 8)")
	flag.DurationVar(&opts.Latency, "latency", 0, "added response time of each app")
	flag.IntVar(&opts.Leavers, "leavers", 0, "Users suspended one at a time, as many at once, and as many while a second organisation joins (default 100, quick 10, at most a tenth of --users)")
	flag.IntVar(&opts.RateBudget, "rate-budget", 0, "writes a minute the rate-limited app allows (default 180)")
	flag.DurationVar(&opts.RateDuration, "rate-duration", 0, "how long the rate budget scenario provisions for (default 2m, quick 20s)")
	flag.IntVar(&opts.LDAPUsers, "ldap-users", 0, "users in the slapd directory (default 10000, quick 200)")
	flag.IntVar(&opts.LDAPTargetUsers, "ldap-target-users", 0, "accounts provisioned into slapd and into Active Directory (default 10000, quick 200)")
	flag.IntVar(&opts.WebhookUsers, "webhook-users", 0, "accounts provisioned through the webhook connector (default 10000, quick 200)")
	flag.IntVar(&opts.GitHubMembers, "github-members", 0, "people invited into the GitHub organization, in 50 teams (default 5000, quick 200)")
	flag.IntVar(&opts.SuiteUsers, "suite-users", 0, "people provisioned into Google Workspace and into Entra ID, in 50 groups (default 10000, quick 200)")
	flag.IntVar(&opts.InboundClients, "inbound-clients", 0, "identity-provider clients pushing at once (default 8)")
	flag.DurationVar(&opts.InboundDuration, "inbound-duration", 0, "how long they push (default 15s, quick 3s)")
	flag.StringVar(&opts.Out, "out", "", "where the JSON report goes (default bench/results.json, quick bin/bench/results-quick.json, scale bench/scale.json)")
	flag.StringVar(&opts.ProfileDir, "profile-dir", "", "where the pprof profiles go (default bin/bench)")
	flag.StringVar(&opts.Dashboard, "dashboard", "", "where the dashboard drawn from the run's metrics goes (default docs/img/dashboard.png, quick bin/bench/dashboard-quick.png), or with --scale the curves (default docs/img/scale.png)")
	flag.IntVar(&opts.Replicas, "replicas", 1, "replicas of the operator, in this process, sharing automatic shards (4 a replica) when more than one; with --scale, at every size")
	flag.BoolVar(&opts.KillReplica, "kill-replica", false, "with --replicas above 1: kill the last replica (its connections cut, its leases left to expire) once the initial sync has made half its accounts")
	flag.DurationVar(&opts.APIServerProfile, "apiserver-profile", 0, "profile the API server's CPU for this long from the start of the initial sync, into --profile-dir")
	flag.BoolVar(&opts.Verbose, "v", false, "log the operator to stderr")
	only := flag.String("only", "", "run these parts alone, comma-separated: provisioning, rate, directory, apps")
	scale := flag.Bool("scale", false, "measure how cost grows with the organisation: the provisioning scenarios at each of --sizes, each in a process of its own; write bench/scale.json and docs/img/scale.png")
	sizes := flag.String("sizes", "1000x5,10000x5,50000x5,10000x20", "the sizes of --scale, as PEOPLExAPPS")
	collect := flag.Bool("collect", false, "with --scale: make the scale report of the --sizes already run into bin/bench/scale, without running any, then draw it")
	redraw := flag.String("redraw", "", "with --scale: judge this saved scale report again and draw its curves, without running anything")
	flag.Parse()
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case *scale && *collect:
		parsed, err := bench.ParseScaleSizes(*sizes)
		if err == nil {
			_, err = bench.Collect(bench.ScaleOptions{Sizes: parsed, Out: opts.Out})
		}
		if err == nil {
			err = bench.Redraw(cmp.Or(opts.Out, "bench/scale.json"), opts.Dashboard, os.Stdout)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	case *scale && *redraw != "":
		if err := bench.Redraw(*redraw, opts.Dashboard, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	case *scale:
		os.Exit(runScale(ctx, *sizes, opts))
	}
	report, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if missed := report.Missed(); len(missed) > 0 {
		fmt.Printf("\n%d of %d figures missed their target.\n", len(missed), len(report.Results))
	}
}

// runScale is make bench ARGS=--scale; it returns the exit code.
func runScale(ctx context.Context, sizes string, opts bench.Options) int {
	parsed, err := bench.ParseScaleSizes(sizes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	report, err := bench.Scale(ctx, bench.ScaleOptions{Sizes: parsed, Concurrency: opts.Concurrency, Leavers: opts.Leavers,
		Replicas: opts.Replicas, Out: opts.Out, Chart: opts.Dashboard})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if missed := (&bench.Report{Results: report.Results}).Missed(); len(missed) > 0 {
		fmt.Printf("\n%d of %d figures missed their target.\n", len(missed), len(report.Results))
	}
	return 0
}
