// Command kubectl-roster is the kubectl plugin for Roster. Put it on PATH; kubectl runs
// it as `kubectl roster`.
package main

import (
	"context"
	"os"

	"github.com/rosterhq/roster/cmd/kubectl-roster/plugin"
)

func main() { os.Exit(plugin.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }
