package controllers_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rosterhq/roster/controllers"
)

// TestASecretReadThatFailsIsNotAChange: a connector is built again only when a Secret
// it reads changes, goes away or may no longer be read, never because one read of it
// failed (a busy API server): a new connector makes the engine list the whole app
// again, and drops a listing under way.
func TestASecretReadThatFailsIsNotAChange(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-token"}, StringData: map[string]string{"token": "first-token-abcdefgh"}}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	read := map[string]string{"app-token": secret.ResourceVersion}
	if !controllers.SecretsUnchanged(ctx, env.Client, ns, read) {
		t.Fatal("a Secret nobody touched counts as changed")
	}
	failing, cancel := context.WithCancel(ctx)
	cancel()
	if !controllers.SecretsUnchanged(failing, env.Client, ns, read) {
		t.Fatal("a read that failed counts as a changed Secret")
	}
	cfg, err := env.UserConfig("no-secrets-" + ns)
	if err != nil {
		t.Fatal(err)
	}
	refused, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if controllers.SecretsUnchanged(ctx, refused, ns, read) {
		t.Fatal("a Secret Roster may no longer read counts as unchanged")
	}
	secret.StringData = map[string]string{"token": "second-token-abcdefgh"}
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if controllers.SecretsUnchanged(ctx, env.Client, ns, read) {
		t.Fatal("a rotated Secret counts as unchanged")
	}
	read["app-token"] = secret.ResourceVersion
	if err := env.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if controllers.SecretsUnchanged(ctx, env.Client, ns, read) {
		t.Fatal("a deleted Secret counts as unchanged")
	}
}
