package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/ldapcount"
	"github.com/rosterhq/roster/test/samba"
	"github.com/rosterhq/roster/test/slapd"
	"github.com/rosterhq/roster/test/testcert"
)

// targetDirectory is a directory the LDAP target scenario provisions into, behind an
// counting proxy, with what the operator and the floor need to reach it.
type targetDirectory struct {
	name, short      string
	flavor           identityv1alpha1.LDAPFlavor
	base             string
	conn             identityv1alpha1.LDAPConnection // to the counter
	password         identityv1alpha1.LDAPPasswordPolicy
	secret           map[string]string
	counter          *ldapcount.Counter
	tls              *tls.Config // the counter's client side, nil for plain LDAP
	bindDN, bindPass string
	direct           string // the directory's own URL, for checks that are not counted
	entry            func(dn string, p person) *goldap.AddRequest
	rdn, login       string
	disabled         func(*goldap.Entry) bool
	stop             func()
}

func (d *targetDirectory) usersDN() string  { return "ou=bench-users," + d.base }
func (d *targetDirectory) groupsDN() string { return "ou=bench-groups," + d.base }
func (d *targetDirectory) floorDN() string  { return "ou=bench-floor," + d.base }

// ldapTargets provisions the organisation into slapd and into Samba's Active
// Directory, each time against the floor of the same adds sent straight to the
// directory at the operator's concurrency, then measures leavers to disabled.
func (b *bench) ldapTargets(ctx context.Context) error {
	for _, start := range []func(string) (*targetDirectory, error){startSlapdTarget, startSambaTarget} {
		dir, err := os.MkdirTemp("", "roster-bench-directory-")
		if err != nil {
			return err
		}
		d, err := start(dir)
		if err == nil {
			err = b.ldapTarget(ctx, d)
			d.stop()
		}
		_ = os.RemoveAll(dir)
		if err != nil {
			return err
		}
	}
	return nil
}

func startSlapdTarget(dir string) (*targetDirectory, error) {
	srv, err := slapd.Run(dir)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(srv.URL)
	d := &targetDirectory{
		name: "OpenLDAP", short: "openldap", flavor: identityv1alpha1.LDAPFlavorOpenLDAP, base: slapd.BaseDN,
		password: identityv1alpha1.LDAPPasswordNone, bindDN: slapd.AdminDN, bindPass: slapd.Password, direct: srv.URL,
		rdn: "uid", login: "uid",
		disabled: func(e *goldap.Entry) bool { return e.GetAttributeValue("pwdAccountLockedTime") != "" },
		entry: func(dn string, p person) *goldap.AddRequest {
			req := goldap.NewAddRequest(dn, nil)
			req.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "inetOrgPerson"})
			req.Attribute("uid", []string{p.email})
			req.Attribute("cn", []string{p.given + " " + p.family})
			req.Attribute("sn", []string{p.family})
			req.Attribute("givenName", []string{p.given})
			req.Attribute("displayName", []string{p.given + " " + p.family})
			req.Attribute("mail", []string{p.email})
			req.Attribute("title", []string{p.title})
			req.Attribute("departmentNumber", []string{p.department})
			return req
		},
	}
	if d.counter, err = ldapcount.Start(u.Host, nil, nil, d.groupsDN()); err != nil {
		srv.Stop()
		return nil, err
	}
	d.conn = identityv1alpha1.LDAPConnection{URL: "ldap://" + d.counter.Addr(), Security: identityv1alpha1.LDAPSecurityNone, BindDN: slapd.AdminDN,
		PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "directory", Key: "password"}}
	d.secret = map[string]string{"password": slapd.Password}
	d.stop = func() { d.counter.Stop(); srv.Stop() }
	return d, nil
}

// startSambaTarget starts a domain controller behind a counter that ends TLS, since
// Active Directory takes passwords only over an encrypted connection.
func startSambaTarget(dir string) (*targetDirectory, error) {
	srv, err := samba.Run(filepath.Join(dir, "dc"))
	if err != nil {
		return nil, err
	}
	host := strings.TrimPrefix(strings.TrimSuffix(srv.LDAPSURL, ":636"), "ldaps://")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CA)
	upstream := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	certDir := filepath.Join(dir, "counter")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	ca, err := testcert.Write(certDir, net.ParseIP("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "server.pem"), filepath.Join(certDir, "server.key"))
	if err != nil {
		return nil, err
	}
	clientPool := x509.NewCertPool()
	clientPool.AppendCertsFromPEM(ca)
	d := &targetDirectory{
		name: "Active Directory", short: "ad", flavor: identityv1alpha1.LDAPFlavorActiveDirectory, base: samba.BaseDN,
		password: identityv1alpha1.LDAPPasswordRandom, bindDN: samba.AdminDN, bindPass: samba.Password, direct: srv.URL,
		tls: &tls.Config{RootCAs: clientPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, rdn: "cn", login: "sAMAccountName",
		disabled: func(e *goldap.Entry) bool {
			uac, _ := strconv.Atoi(e.GetAttributeValue("userAccountControl"))
			return uac&2 != 0
		},
		entry: func(dn string, p person) *goldap.AddRequest {
			req := goldap.NewAddRequest(dn, nil)
			req.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
			req.Attribute("sAMAccountName", []string{p.id})
			req.Attribute("userPrincipalName", []string{p.email})
			req.Attribute("givenName", []string{p.given})
			req.Attribute("sn", []string{p.family})
			req.Attribute("displayName", []string{p.given + " " + p.family})
			req.Attribute("mail", []string{p.email})
			req.Attribute("title", []string{p.title})
			req.Attribute("department", []string{p.department})
			req.Attribute("unicodePwd", []string{floorPassword(p.id)})
			req.Attribute("pwdLastSet", []string{"0"})
			req.Attribute("userAccountControl", []string{"512"})
			return req
		},
	}
	if d.counter, err = ldapcount.Start(host+":636", upstream, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, d.groupsDN()); err != nil {
		srv.Stop()
		return nil, err
	}
	d.conn = identityv1alpha1.LDAPConnection{URL: "ldaps://" + d.counter.Addr(), BindDN: samba.AdminDN,
		PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "directory", Key: "password"},
		TLS:               &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "directory", Key: "ca"}}}
	d.secret = map[string]string{"password": samba.Password, "ca": string(ca)}
	d.stop = func() { d.counter.Stop(); srv.Stop() }
	return d, nil
}

// floorPassword is a password as the floor sends it: as long as the operator's random
// ones, quoted and in UTF-16, so that the directory does the same work for both.
func floorPassword(id string) string {
	pw := `"Floor-` + id + `-aB3!aB3!aB3!aB3!aB3!x"`
	b := make([]byte, 0, 2*len(pw))
	for _, r := range pw {
		b = append(b, byte(r), 0)
	}
	return string(b)
}

// dial connects to the counter (or straight to the directory) as its administrator.
func (d *targetDirectory) dial(counted bool) (*goldap.Conn, error) {
	var conn *goldap.Conn
	var err error
	switch {
	case !counted:
		conn, err = goldap.DialURL(d.direct)
	case d.tls != nil:
		conn, err = goldap.DialURL("ldaps://"+d.counter.Addr(), goldap.DialWithTLSConfig(d.tls))
	default:
		conn, err = goldap.DialURL("ldap://" + d.counter.Addr())
	}
	if err != nil {
		return nil, err
	}
	if err := conn.Bind(d.bindDN, d.bindPass); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (d *targetDirectory) addOUs(dns ...string) error {
	conn, err := d.dial(false)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, dn := range dns {
		req := goldap.NewAddRequest(dn, nil)
		req.Attribute("objectClass", []string{"organizationalUnit"})
		if err := conn.Add(req); err != nil {
			return fmt.Errorf("adding %s: %w", dn, err)
		}
	}
	return nil
}

func (b *bench) ldapTarget(ctx context.Context, d *targetDirectory) error {
	n := b.opts.LDAPTargetUsers
	if err := d.addOUs(d.usersDN(), d.groupsDN(), d.floorDN()); err != nil {
		return err
	}
	floor, err := b.ldapTargetFloor(ctx, d, people("F", 1, n))
	if err != nil {
		return err
	}
	d.counter.Reset()
	org := people("T", 1, n)
	took, err := b.provisionInto(ctx, d, org)
	if err != nil {
		return err
	}
	scenario := "LDAP target: " + d.name
	adds, members := float64(d.counter.Adds.Load()), float64(d.counter.MemberValues.Load())
	details := map[string]float64{"accounts": float64(n), "searches": float64(d.counter.Searches.Load()),
		"modifies": float64(d.counter.Modifies.Load()), "renames": float64(d.counter.Renames.Load())}
	b.report.add(againstFloor(scenario, fmt.Sprintf("%d accounts with a group", n), took.Seconds(), floor.Seconds(), 1.3, "s", details))
	b.report.add(atMost(scenario, "adds per account created", adds/float64(n), 1, "", nil))
	b.report.add(atMost(scenario, "member modifies per 1,000 members begun", float64(d.counter.GroupModifies.Load())/math.Ceil(members/1000), 1, "",
		map[string]float64{"memberValues": members, "groupModifies": float64(d.counter.GroupModifies.Load())}))
	latencies, err := b.directoryLeavers(ctx, d, org)
	if err != nil {
		return err
	}
	b.report.add(atMost(scenario, "leaver p99 until disabled", percentile(latencies, 99).Seconds(), 1, "s",
		map[string]float64{"leavers": float64(len(latencies)), "p50Seconds": percentile(latencies, 50).Seconds()}))
	b.logf("  %s: %d accounts in %s (floor %s), %.2f adds and %.2f searches per account, %d member modifies for %d members; leaver p99 %s\n",
		d.name, n, took.Round(time.Millisecond), floor.Round(time.Millisecond), adds/float64(n), float64(d.counter.Searches.Load())/float64(n),
		d.counter.GroupModifies.Load(), int(members), percentile(latencies, 99).Round(time.Millisecond))
	return b.removeAll(ctx, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "directory-" + d.short, Name: "directory"}})
}

// ldapTargetFloor adds the people straight to the directory at the operator's
// concurrency, each worker on its own bound connection, then puts them in one group with
// modifies of 5,000 members.
func (b *bench) ldapTargetFloor(ctx context.Context, d *targetDirectory, org []person) (time.Duration, error) {
	conns := make(chan *goldap.Conn, b.opts.Concurrency)
	for range b.opts.Concurrency {
		c, err := d.dial(true)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns <- c
	}
	dns := make([]string, len(org))
	start := time.Now()
	err := parallel(ctx, len(org), b.opts.Concurrency, func(i int) error {
		c := <-conns
		defer func() { conns <- c }()
		name := org[i].email
		if d.rdn == "cn" {
			name = org[i].id
		}
		dns[i] = d.rdn + "=" + goldap.EscapeDN(name) + "," + d.floorDN()
		return c.Add(d.entry(dns[i], org[i]))
	})
	if err != nil {
		return 0, fmt.Errorf("the floor's adds: %w", err)
	}
	c := <-conns
	group := "cn=floor-staff," + d.floorDN()
	req := goldap.NewAddRequest(group, nil)
	req.Attribute("objectClass", []string{map[bool]string{true: "group", false: "groupOfNames"}[d.tls != nil]})
	req.Attribute("cn", []string{"floor-staff"})
	if d.tls == nil {
		req.Attribute("member", []string{""})
	}
	if err := c.Add(req); err != nil {
		return 0, err
	}
	for chunk := range slices.Chunk(dns, 5000) {
		m := goldap.NewModifyRequest(group, nil)
		m.Add("member", chunk)
		if err := c.Modify(m); err != nil {
			return 0, err
		}
	}
	conns <- c
	return time.Since(start), nil
}

// provisionInto creates the organisation's Users (not yet assigned), then a Role that
// grants the directory with a group to everyone, and times it until every account
// exists and is in the group.
func (b *bench) provisionInto(ctx context.Context, d *targetDirectory, org []person) (time.Duration, error) {
	ns := "directory-" + d.short
	concurrency := int32(b.opts.Concurrency)
	conn := &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "directory"},
		Spec: identityv1alpha1.AppConnectionSpec{
			LDAP: &identityv1alpha1.LDAPConnector{LDAPConnection: d.conn, Flavor: d.flavor, UsersDN: d.usersDN(), GroupsDN: d.groupsDN(),
				InitialPassword: d.password},
			RateLimit:       &identityv1alpha1.RateLimit{Requests: 1000000, MaxConcurrency: &concurrency},
			SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &benchThreshold},
			Deprovision:     identityv1alpha1.DeprovisionPolicy{OnRemoval: identityv1alpha1.RemovalOrphan},
		},
	}
	if d.flavor == identityv1alpha1.LDAPFlavorActiveDirectory {
		conn.Spec.Mapping = []identityv1alpha1.ExpressionMapping{{Target: "ldap:sAMAccountName", Expression: "user.externalID"}}
	}
	if err := b.createAll(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "directory"}, StringData: d.secret}, conn); err != nil {
		return 0, err
	}
	if err := b.createUnassigned(ctx, ns, org, nil); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := b.createAll(ctx, staffRole(ns, "directory")); err != nil {
		return 0, err
	}
	n := int64(len(org))
	err := b.waitFor(ctx, timeoutFor(len(org)*20), 20*time.Millisecond, "provisioning into "+d.name, func() (bool, string, error) {
		added, members := d.counter.AddsOK.Load(), d.counter.MemberValues.Load()
		return added >= n && members >= n, fmt.Sprintf("%d/%d accounts, %d/%d members", added, n, members, n), nil
	})
	return time.Since(start), err
}

// directoryLeavers suspends people one at a time and times each until the directory
// shows the account disabled.
func (b *bench) directoryLeavers(ctx context.Context, d *targetDirectory, org []person) ([]time.Duration, error) {
	ns := "directory-" + d.short
	conn, err := d.dial(false)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	leavers := org[len(org)-min(b.opts.Leavers, len(org)/10):]
	var out []time.Duration
	for _, p := range leavers {
		start := time.Now()
		u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr-" + strings.ToLower(p.id)}}
		if err := b.env.Client.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"state":"Suspended"}}`))); err != nil {
			return nil, err
		}
		login := p.email
		if d.login == "sAMAccountName" {
			login = p.id
		}
		filter := "(" + d.login + "=" + goldap.EscapeFilter(login) + ")"
		if err := b.waitFor(ctx, time.Minute, 5*time.Millisecond, "disabling "+login, func() (bool, string, error) {
			res, err := conn.Search(goldap.NewSearchRequest(d.usersDN(), goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 1, 0, false, filter,
				[]string{"userAccountControl", "pwdAccountLockedTime"}, nil))
			if err != nil {
				return false, "", err
			}
			return len(res.Entries) == 1 && d.disabled(res.Entries[0]), "not yet", nil
		}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out, nil
}

// createUnassigned creates the organisation's Users in a namespace, assigned to
// nothing yet (change, when set, adjusts each), straight through the API server at the
// bench's concurrency, and waits until the operator's cache holds them all.
func (b *bench) createUnassigned(ctx context.Context, ns string, org []person, change func(i int, u *identityv1alpha1.User)) error {
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: b.env.Scheme})
	if err != nil {
		return err
	}
	if err := parallel(ctx, len(org), b.opts.Concurrency, func(i int) error {
		u := floorUser(ns, org[i])
		u.Labels = nil
		if change != nil {
			change(i, u)
		}
		return c.Create(ctx, u)
	}); err != nil {
		return err
	}
	return b.waitFor(ctx, timeoutFor(len(org)), 100*time.Millisecond, "the operator seeing the Users", func() (bool, string, error) {
		var users identityv1alpha1.UserList
		if err := b.op.cache.List(ctx, &users, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return false, "", err
		}
		return len(users.Items) == len(org), fmt.Sprintf("%d/%d Users", len(users.Items), len(org)), nil
	})
}

// staffRole grants an app, with the group staff, to everyone in the namespace.
func staffRole(ns, app string) *identityv1alpha1.Role {
	return &identityv1alpha1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "staff"},
		Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Rule: "true"},
			Grants: []identityv1alpha1.RoleGrant{{App: app, Entitlements: identityv1alpha1.Entitlements{Groups: []string{"staff"}}}}},
	}
}
