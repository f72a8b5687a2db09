package plugin

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers"
)

// table writes aligned columns.
func table(out io.Writer, header string, rows [][]string) {
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	_ = w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(t *metav1.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return now.Sub(t.Time).Round(time.Second).String() + " ago"
}

func readyOf(conds []metav1.Condition) (string, string) {
	c := meta.FindStatusCondition(conds, identityv1alpha1.ConditionReady)
	if c == nil {
		return "Unknown", ""
	}
	return string(c.Status), c.Reason
}

// statusCommand: every app and source of the namespace in one table.
func (s *session) statusCommand() *cobra.Command {
	return &cobra.Command{Use: "status", Short: "Every app and directory sync: health, counts, held plans, quarantine, last sync",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, now := cmd.Context(), time.Now()
			var conns identityv1alpha1.AppConnectionList
			var syncs identityv1alpha1.DirectorySyncList
			if err := s.client.List(ctx, &conns, client.InNamespace(s.ns)); err != nil {
				return err
			}
			if err := s.client.List(ctx, &syncs, client.InNamespace(s.ns)); err != nil {
				return err
			}
			var rows [][]string
			for _, c := range conns.Items {
				ready, reason := readyOf(c.Status.Conditions)
				held, quarantine := "-", "-"
				if c.Status.Plan != nil && reason == identityv1alpha1.ReasonSafetyThresholdExceeded {
					held = c.Status.Plan.ID
				}
				if q := c.Status.QuarantinedUntil; q != nil && q.After(now) {
					quarantine = "until " + q.UTC().Format(time.RFC3339)
				}
				a := c.Status.Accounts
				rows = append(rows, []string{"app/" + c.Name, ready, reason, fmt.Sprintf("%d/%d/%d/%d", a.Managed, a.Pending, a.Failed, a.Unmanaged),
					held, quarantine, ago(c.Status.LastFullSyncTime, now)})
			}
			for _, d := range syncs.Items {
				ready, reason := readyOf(d.Status.Conditions)
				rows = append(rows, []string{"sync/" + d.Name, ready, reason, fmt.Sprintf("%d users", d.Status.Users), "-", "-", ago(d.Status.LastSyncTime, now)})
			}
			table(s.out, "NAME\tREADY\tREASON\tMANAGED/PENDING/FAILED/UNMANAGED\tHELD PLAN\tQUARANTINE\tLAST SYNC", rows)
			return nil
		}}
}

// user finds a User by object name or userName.
func (s *session) user(cmd *cobra.Command, name string) (*identityv1alpha1.User, error) {
	var users identityv1alpha1.UserList
	if err := s.client.List(cmd.Context(), &users, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	for i := range users.Items {
		if u := &users.Items[i]; u.Name == name || strings.EqualFold(u.Spec.UserName, name) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("no User %s in namespace %s", name, s.ns)
}

// userAndHoldings finds a User and evaluates who holds what.
func (s *session) userAndHoldings(cmd *cobra.Command, name string) (*identityv1alpha1.User, []controllers.Holding, error) {
	u, err := s.user(cmd, name)
	if err != nil {
		return nil, nil, err
	}
	holdings, err := s.evaluate(cmd, nil)
	return u, holdings, err
}

// accessCommand: a person's accounts across apps.
func (s *session) accessCommand() *cobra.Command {
	return &cobra.Command{Use: "access USER", Short: "A person's accounts in every app: state, groups, last sync, last login",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			u, holdings, err := s.userAndHoldings(cmd, args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			fmt.Fprintf(s.out, "%s (%s): %s\n", u.Spec.UserName, u.Name, dash(string(u.Status.Phase)))
			var rows [][]string
			for _, a := range u.Status.Accounts {
				groups := "-"
				for _, h := range holdings {
					if h.App == a.App && h.User == u.Name {
						groups = dash(strings.Join(h.Groups, ","))
					}
				}
				rows = append(rows, []string{a.App, string(a.State), groups, ago(a.LastSyncTime, now), ago(a.LastLoginTime, now), dash(a.Message)})
			}
			table(s.out, "APP\tSTATE\tGROUPS\tLAST SYNC\tLAST LOGIN\tMESSAGE", rows)
			return nil
		}}
}

// evaluate runs the operator's evaluation of access over the namespace's live objects,
// with changed objects in their place.
func (s *session) evaluate(cmd *cobra.Command, changed []client.Object) ([]controllers.Holding, error) {
	live, err := s.live(cmd)
	if err != nil {
		return nil, err
	}
	return controllers.Evaluate(s.scheme, merge(live, changed), time.Now())
}

// whoHasCommand: everyone with an account in an app.
func (s *session) whoHasCommand() *cobra.Command {
	var group string
	cmd := &cobra.Command{Use: "who-has APP", Short: "Everyone with an account in an app, its state and groups, and how they got it",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			holdings, err := s.evaluate(cmd, nil)
			if err != nil {
				return err
			}
			states, err := s.accountStates(cmd, args[0])
			if err != nil {
				return err
			}
			var rows [][]string
			for _, h := range holdings {
				if h.App != args[0] || group != "" && !slices.ContainsFunc(h.Groups, func(g string) bool { return strings.EqualFold(g, group) }) {
					continue
				}
				rows = append(rows, []string{h.UserName, dash(states[h.User]), dash(strings.Join(h.Groups, ",")), through(h.Through)})
			}
			table(s.out, "USER\tSTATE\tGROUPS\tTHROUGH", rows)
			return nil
		}}
	cmd.Flags().StringVar(&group, "group", "", "only members of this app group")
	return cmd
}

// accountStates are the account states Users' status records in an app.
func (s *session) accountStates(cmd *cobra.Command, app string) (map[string]string, error) {
	var users identityv1alpha1.UserList
	if err := s.client.List(cmd.Context(), &users, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, u := range users.Items {
		for _, a := range u.Status.Accounts {
			if a.App == app {
				out[u.Name] = string(a.State)
			}
		}
	}
	return out, nil
}

// through says how an app is held: Roles, AppAssignments, AccessRequests.
func through(grants []controllers.Grant) string {
	var parts []string
	for _, g := range grants {
		switch {
		case g.Request != "":
			parts = append(parts, "AccessRequest "+g.Request)
		case g.Role != "":
			parts = append(parts, "Role "+g.Role)
		default:
			parts = append(parts, "AppAssignment "+g.Assignment)
		}
	}
	return strings.Join(parts, ", ")
}

// whyCommand: what gives a person each account, and what would take it away.
func (s *session) whyCommand() *cobra.Command {
	return &cobra.Command{Use: "why USER [APP]", Short: "Which Roles, rules, AppAssignments and AccessRequests give a person each account, and what would remove it",
		Args: cobra.RangeArgs(1, 2), RunE: func(cmd *cobra.Command, args []string) error {
			u, holdings, err := s.userAndHoldings(cmd, args[0])
			if err != nil {
				return err
			}
			roles, err := s.roles(cmd)
			if err != nil {
				return err
			}
			found := false
			for _, h := range holdings {
				if h.User != u.Name || len(args) == 2 && h.App != args[1] {
					continue
				}
				found = true
				fmt.Fprintf(s.out, "%s has %s", u.Spec.UserName, h.App)
				if len(h.Groups) > 0 {
					fmt.Fprintf(s.out, " (groups %s)", strings.Join(h.Groups, ", "))
				}
				if !h.Active {
					fmt.Fprintf(s.out, ", but is %s: the account is deprovisioned", strings.ToLower(string(u.Status.Phase)))
				}
				fmt.Fprintln(s.out, " because:")
				for _, g := range h.Through {
					fmt.Fprintf(s.out, "  - %s\n", reason(g, roles))
				}
				fmt.Fprintf(s.out, "  It goes with: suspending the User, or removing every reason above.\n")
			}
			if !found {
				what := "any app"
				if len(args) == 2 {
					what = args[1]
				}
				fmt.Fprintf(s.out, "%s has no access to %s: no live AppAssignment gives it.\n", u.Spec.UserName, what)
			}
			return nil
		}}
}

func (s *session) roles(cmd *cobra.Command) (map[string]identityv1alpha1.Role, error) {
	var list identityv1alpha1.RoleList
	if err := s.client.List(cmd.Context(), &list, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	out := map[string]identityv1alpha1.Role{}
	for _, r := range list.Items {
		out[r.Name] = r
	}
	return out, nil
}

// reason words one grant: the Role and how its members are chosen, the request and its
// expiry, or the assignment.
func reason(g controllers.Grant, roles map[string]identityv1alpha1.Role) string {
	switch {
	case g.Request != "":
		return fmt.Sprintf("the AccessRequest %s (AppAssignment %s, time-bound); kubectl roster deny %s revokes it", g.Request, g.Assignment, g.Request)
	case g.Role != "":
		r := roles[g.Role]
		var how []string
		m := r.Spec.Members
		if len(m.Users) > 0 {
			how = append(how, "users "+strings.Join(m.Users, ","))
		}
		if m.Selector != nil {
			how = append(how, "selector "+metav1.FormatLabelSelector(m.Selector))
		}
		if len(m.Groups) > 0 {
			how = append(how, "directory groups "+strings.Join(m.Groups, ","))
		}
		if m.Rule != "" {
			how = append(how, "rule "+m.Rule)
		}
		return fmt.Sprintf("member of the Role %s (%s), through AppAssignment %s", g.Role, strings.Join(how, "; "), g.Assignment)
	}
	return "the AppAssignment " + g.Assignment
}
