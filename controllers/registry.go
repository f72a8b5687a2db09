package controllers

import (
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/github"
	"github.com/rosterhq/roster/connectors/googleworkspace"
	"github.com/rosterhq/roster/connectors/hris"
	"github.com/rosterhq/roster/connectors/ldap"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/connectors/microsoftgraph"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/connectors/webhook"
)

// Connectors is the one list of the connectors Roster speaks, used alike by main.go,
// the tests, the demo and the bench: a connector is added here, once. apps holds the
// in-process apps of the memory connector; inbound serves the "scim" directory source
// (nil serves none).
func Connectors(apps *memory.Apps, inbound *InboundSCIM) *connectors.Registry {
	r := connectors.NewRegistry().
		AddTarget("scim", scim.NewFactory()).
		AddTarget("ldap", ldap.NewTargetFactory()).
		AddTarget("github", github.NewFactory()).
		AddTarget("googleWorkspace", googleworkspace.NewFactory()).
		AddTarget("microsoftGraph", microsoftgraph.NewFactory()).
		AddTarget("webhook", webhook.NewFactory()).
		AddTarget("memory", apps.TargetFactory()).
		AddSource("ldap", ldap.NewFactory()).
		AddSource("hris", hris.NewFactory()).
		AddSource("googleWorkspace", googleworkspace.NewSourceFactory()).
		AddSource("microsoftGraph", microsoftgraph.NewSourceFactory())
	if inbound != nil {
		r.AddSource("scim", inbound.SourceFactory())
	}
	return r
}
