// Package plugin is kubectl roster: who has what and why, what a change to the
// manifests would do to people's access, the kill switch, and deciding on access
// requests and held plans.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Exit codes, as kubectl diff's: 0 nothing (or no change), 1 changes, 2 errors.
const (
	exitOK      = 0
	exitChanges = 1
	exitError   = 2
)

// errChanges is what diff returns when the change changes someone's access.
var errChanges = errors.New("the change changes access")

// session is what every command needs: a client of the cluster and the namespace.
type session struct {
	kubeconfig, context, namespace string
	out                            io.Writer

	config *rest.Config
	client client.Client
	scheme *runtime.Scheme
	ns     string
}

// connect reads the kubeconfig as kubectl does and builds the client.
func (s *session) connect() error {
	if s.client != nil {
		return nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if s.kubeconfig != "" {
		rules.ExplicitPath = s.kubeconfig
	}
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: s.context})
	restConfig, err := cfg.ClientConfig()
	if err != nil {
		return err
	}
	s.ns = s.namespace
	if s.ns == "" {
		if s.ns, _, err = cfg.Namespace(); err != nil {
			return err
		}
	}
	s.scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s.scheme); err != nil {
		return err
	}
	if err := identityv1alpha1.AddToScheme(s.scheme); err != nil {
		return err
	}
	s.config = restConfig
	s.client, err = client.New(restConfig, client.Options{Scheme: s.scheme})
	return err
}

// Run runs the plugin with its arguments and returns its exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s := &session{out: stdout}
	root := &cobra.Command{
		Use:           "kubectl-roster",
		Short:         "Who has what in Roster, why, and what a change would do",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Name() == "help" {
				return nil
			}
			return s.connect()
		},
	}
	root.PersistentFlags().StringVar(&s.kubeconfig, "kubeconfig", "", "path to the kubeconfig file")
	root.PersistentFlags().StringVar(&s.context, "context", "", "the kubeconfig context to use")
	root.PersistentFlags().StringVarP(&s.namespace, "namespace", "n", "", "the namespace (organisation); the context's by default")
	root.AddCommand(s.statusCommand(), s.accessCommand(), s.whoHasCommand(), s.whyCommand(), s.diffCommand(),
		s.suspendCommand(true), s.suspendCommand(false), s.decideCommand(identityv1alpha1.DecisionApprove),
		s.decideCommand(identityv1alpha1.DecisionDeny), s.requestCommand())
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case errors.Is(err, errChanges):
		return exitChanges
	case err != nil:
		fmt.Fprintln(stderr, "error:", err)
		return exitError
	}
	return exitOK
}
