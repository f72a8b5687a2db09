package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rosterhq/roster/connectors"
)

// secretReader reads Secret (and ConfigMap) keys of one namespace straight from the API
// server, so that Secret values are never held in the operator's caches.
type secretReader struct {
	reader    client.Reader
	namespace string
	// versions records the resourceVersion of every Secret read, to tell when one changed.
	versions map[string]string
}

func newSecretReader(reader client.Reader, namespace string) *secretReader {
	return &secretReader{reader: reader, namespace: namespace, versions: map[string]string{}}
}

// ConfigMapValue returns one key of a ConfigMap (data or binaryData).
func (r *secretReader) ConfigMapValue(ctx context.Context, name, key string) ([]byte, error) {
	cm := &corev1.ConfigMap{}
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the ConfigMap %s does not exist: %w", name, connectors.ErrSecretNotFound)
		}
		return nil, fmt.Errorf("reading ConfigMap %s: %w", name, err)
	}
	if v, ok := cm.Data[key]; ok {
		return []byte(v), nil
	}
	if v, ok := cm.BinaryData[key]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("the ConfigMap %s has no key %q: %w", name, key, connectors.ErrSecretNotFound)
}

// SecretValue returns one key of a Secret. A missing Secret or key is
// connectors.ErrSecretNotFound, with a message that names them but no value.
func (r *secretReader) SecretValue(ctx context.Context, name, key string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the Secret %s does not exist: %w", name, connectors.ErrSecretNotFound)
		}
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	r.versions[name] = s.ResourceVersion
	v, ok := s.Data[key]
	if !ok {
		return nil, fmt.Errorf("the Secret %s has no key %q: %w", name, key, connectors.ErrSecretNotFound)
	}
	return v, nil
}
