// Package connectors holds the contract between Roster's engine and the systems it
// provisions into (targets) or reads people from (sources), and the registry that maps
// an AppConnection's connector block or a DirectorySync's source block to the code
// that speaks to that system. Each system lives in its own package below.
package connectors

import (
	"context"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Target is an app Roster provisions accounts into.
type Target interface {
	// Validate checks the endpoint and credentials and reports what the app supports.
	Validate(ctx context.Context) (Capabilities, error)
}

// Source is a system Roster reads people from.
type Source interface {
	// Validate checks the endpoint and credentials.
	Validate(ctx context.Context) error
}

// Capabilities are what a target was found to support.
type Capabilities []string

// TargetFactory builds a Target for one AppConnection, with its credentials resolved.
type TargetFactory func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets SecretReader) (Target, error)

// SourceFactory builds a Source for one DirectorySync, with its credentials resolved.
type SourceFactory func(ctx context.Context, sync *identityv1alpha1.DirectorySync, secrets SecretReader) (Source, error)

// SecretReader reads one key of a Secret in the object's namespace.
type SecretReader interface {
	SecretValue(ctx context.Context, name, key string) ([]byte, error)
}
