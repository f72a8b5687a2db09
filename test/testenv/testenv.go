// Package testenv starts a real kube-apiserver and etcd (built by hack/setup-envtest.sh)
// with Roster's CRDs installed, for controller and API tests.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	env    *envtest.Environment
}

// RepoRoot is the root of the Roster source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme returns a scheme with the built-in kinds and Roster's.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	must(clientgoscheme.AddToScheme(s))
	must(identityv1alpha1.AddToScheme(s))
	return s
}

// Codecs decodes objects of every kind Scheme knows.
func Codecs() serializer.CodecFactory { return serializer.NewCodecFactory(Scheme()) }

// Start starts kube-apiserver and etcd and installs the CRDs from config/crd/bases.
// The binaries come from KUBEBUILDER_ASSETS, or from bin/k8s where
// hack/setup-envtest.sh links them.
func Start() (*Env, error) {
	assets, err := assetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	scheme := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// AdminKubeConfig is a kubeconfig of a cluster admin for the control plane, for kubectl.
func (e *Env) AdminKubeConfig() ([]byte, error) {
	return e.KubeConfig("roster-demo-admin", "system:masters")
}

// KubeConfig is a kubeconfig of a person with their own client certificate.
func (e *Env) KubeConfig(name string, groups ...string) ([]byte, error) {
	user, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

// UserConfig is a client config of a person the API server authenticates by a client
// certificate of their own, with their user name and groups.
func (e *Env) UserConfig(name string, groups ...string) (*rest.Config, error) {
	user, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Kubectl is the kubectl hack/setup-envtest.sh builds with the control plane.
func Kubectl() (string, error) {
	dir, err := assetsDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("kubectl not found in %s: run hack/setup-envtest.sh (make test does)", dir)
	}
	return path, nil
}

func assetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run hack/setup-envtest.sh (make test does)", bin, dir)
		}
	}
	return dir, nil
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
