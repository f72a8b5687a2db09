package main

import (
	"strings"
	"testing"
)

// TestTheAPIFollowsTheConventions runs the checks over Roster's API.
func TestTheAPIFollowsTheConventions(t *testing.T) {
	findings, err := check("../../api/v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Error(f)
	}
}

// TestEachRuleCatchesItsBreach: a fixture breaks every rule once, and each breach is found.
func TestEachRuleCatchesItsBreach(t *testing.T) {
	findings, err := check("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(findings, "\n")
	for _, want := range []string{
		"statussubresource: Widget has a status",
		"commentstart: WidgetSpec.size",
		"optionalorrequired: WidgetSpec.color",
		"requiredfields: WidgetSpec.shape",
		"nobools: WidgetSpec.enabled",
		"maxlength: WidgetSpec.name",
		"maxlength: WidgetSpec.tags: a list needs",
		"maxlength: WidgetSpec.tags: a list of strings",
		"maxlength: WidgetSpec.labels",
		"conditions: WidgetStatus.conditions: patchStrategy",
		"conditions: WidgetStatus.conditions: conditions need +listType=map",
		"conditions: WidgetStatus.conditions: conditions need +listMapKey=type",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no finding %q in:\n%s", want, all)
		}
	}
	if len(findings) != 12 {
		t.Errorf("%d findings, want 12 (one per breach):\n%s", len(findings), all)
	}
}
