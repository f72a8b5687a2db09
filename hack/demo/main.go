// Command demo is make demo: it starts a control plane, the operator and two apps,
// applies config/samples/demo and tells what Roster does with a joiner, a leaver and a
// mover. --once tells the story and exits (0 only if every step converged).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rosterhq/roster/test/demo"
)

func main() {
	once := flag.Bool("once", false, "tell the story and exit; the exit code says whether every step converged")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, demo.Options{Once: *once}); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
