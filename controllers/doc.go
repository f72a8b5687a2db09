// Package controllers holds one reconciler per Roster kind and the provisioning engine
// that converges each AppConnection's accounts.
package controllers
