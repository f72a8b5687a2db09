package plugin

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// suspendCommand is the kill switch (suspend) or its undoing (resume).
func (s *session) suspendCommand(suspend bool) *cobra.Command {
	state, use, short := identityv1alpha1.UserStateSuspended, "suspend USER", "The kill switch: suspend a person; every account is deprovisioned within seconds"
	if !suspend {
		state, use, short = identityv1alpha1.UserStateActive, "resume USER", "Undo a suspension: the person's accounts come back"
	}
	var wait bool
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		u, err := s.user(cmd, args[0])
		if err != nil {
			return err
		}
		start := time.Now()
		patch := fmt.Appendf(nil, `{"spec":{"state":%q}}`, state)
		if err := s.client.Patch(cmd.Context(), u, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "%s: state %s\n", u.Spec.UserName, state)
		if !wait {
			return nil
		}
		return s.waitAccounts(cmd, u, suspend, start)
	}}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for every account, printing each app's time")
	return cmd
}

// waitAccounts prints each app's account as it goes off (or back on).
func (s *session) waitAccounts(cmd *cobra.Command, u *identityv1alpha1.User, off bool, start time.Time) error {
	done := map[string]bool{}
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		live := &identityv1alpha1.User{}
		if err := s.client.Get(cmd.Context(), client.ObjectKeyFromObject(u), live); err != nil {
			return err
		}
		pending := 0
		for _, a := range live.Status.Accounts {
			settled := (a.State != identityv1alpha1.AccountStateActive) == off && a.State != identityv1alpha1.AccountStatePending
			if settled && !done[a.App] {
				done[a.App] = true
				fmt.Fprintf(s.out, "  %s: %s after %s\n", a.App, strings.ToLower(string(a.State)), time.Since(start).Round(time.Millisecond))
			}
			if !settled {
				pending++
			}
		}
		if pending == 0 && len(live.Status.Accounts) > 0 {
			fmt.Fprintf(s.out, "every account %s in %s\n", map[bool]string{true: "off", false: "back"}[off], time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-ticker.C:
		}
	}
}

// whoami is the caller's Kubernetes user name, as the API server authenticates it.
func (s *session) whoami(cmd *cobra.Command) (string, error) {
	cs, err := kubernetes.NewForConfig(s.config)
	if err != nil {
		return "", err
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(cmd.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("asking the API server who you are: %w", err)
	}
	return review.Status.UserInfo.Username, nil
}

// decideCommand approves or denies an access request, or approves a held plan, as the
// caller the API server authenticates.
func (s *session) decideCommand(decision identityv1alpha1.Decision) *cobra.Command {
	var comment string
	verb := strings.ToLower(string(decision))
	cmd := &cobra.Command{Use: verb + " REQUEST | " + verb + " appconnection/NAME | directorysync/NAME",
		Short: fmt.Sprintf("%s an access request, or a plan held by the safety threshold, as yourself", string(decision)),
		Args:  cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			me, err := s.whoami(cmd)
			if err != nil {
				return err
			}
			if kind, name, isPlan := strings.Cut(args[0], "/"); isPlan {
				if decision != identityv1alpha1.DecisionApprove {
					return fmt.Errorf("a held plan is approved or left to its window: there is nothing to deny")
				}
				return s.approvePlan(cmd, kind, name, me)
			}
			value := map[string]any{"by": me, "decision": decision}
			if comment != "" {
				value["comment"] = comment
			}
			patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/decisions/-", "value": value}})
			ar := &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: args[0]}}
			if err := s.client.Patch(cmd.Context(), ar, client.RawPatch(types.JSONPatchType, patch)); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s: %s by %s\n", args[0], verb, me)
			return nil
		}}
	cmd.Flags().StringVar(&comment, "comment", "", "why")
	return cmd
}

// approvePlan approves the plan an AppConnection or DirectorySync holds.
func (s *session) approvePlan(cmd *cobra.Command, kind, name, me string) error {
	var obj client.Object
	var id string
	switch kind {
	case "appconnection", "appconnections", "app":
		c := &identityv1alpha1.AppConnection{}
		if err := s.client.Get(cmd.Context(), types.NamespacedName{Namespace: s.ns, Name: name}, c); err != nil {
			return err
		}
		if c.Status.Plan == nil {
			return fmt.Errorf("the AppConnection %s holds no plan", name)
		}
		obj, id = c, c.Status.Plan.ID
	default:
		return fmt.Errorf("approve appconnection/NAME; a DirectorySync's held plan id is in its Stalled message: kubectl annotate it as that message says")
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		identityv1alpha1.AnnotationApprovePlan: id, identityv1alpha1.AnnotationPlanApprovedBy: me}}})
	if err := s.client.Patch(cmd.Context(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "%s/%s: plan %s approved by %s\n", kind, name, id, me)
	return nil
}

// requestCommand asks for an app for yourself (or someone) for a while.
func (s *session) requestCommand() *cobra.Command {
	var duration time.Duration
	var reason, forUser, role string
	var groups []string
	cmd := &cobra.Command{Use: "request [APP] --for 8h --reason WHY", Short: "Ask for an app (or a Role) for a while",
		Args: cobra.MaximumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			me, err := s.whoami(cmd)
			if err != nil {
				return err
			}
			if forUser == "" {
				forUser = me
			}
			u, err := s.user(cmd, forUser)
			if err != nil {
				return err
			}
			ar := &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, GenerateName: u.Name + "-"},
				Spec: identityv1alpha1.AccessRequestSpec{UserRef: identityv1alpha1.LocalObjectReference{Name: u.Name}, Requester: me,
					Entitlements: identityv1alpha1.Entitlements{Groups: groups}, Duration: metav1.Duration{Duration: duration}, Justification: reason}}
			switch {
			case role != "":
				ar.Spec.RoleRef = &identityv1alpha1.LocalObjectReference{Name: role}
			case len(args) == 1:
				ar.Spec.App = args[0]
			default:
				return fmt.Errorf("name an app, or a Role with --role")
			}
			if err := s.client.Create(cmd.Context(), ar); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "accessrequest/%s created; its approvers are told, and kubectl get accessrequest %s -n %s shows where it is\n", ar.Name, ar.Name, s.ns)
			return nil
		}}
	cmd.Flags().DurationVar(&duration, "for", 8*time.Hour, "how long")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	cmd.Flags().StringVar(&forUser, "user", "", "who it is for (a User's name or userName); yourself by default")
	cmd.Flags().StringVar(&role, "role", "", "ask for a Role instead of an app")
	cmd.Flags().StringSliceVar(&groups, "group", nil, "app groups to ask for")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}
