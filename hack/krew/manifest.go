package main

// Plugin is krew's plugin manifest (krew.googlecontainertools.github.com/v1alpha2).
type Plugin struct {
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Metadata   struct{ Name string } `json:"metadata"`
	Spec       PluginSpec            `json:"spec"`
}

// PluginSpec describes the plugin and where each platform's archive is.
type PluginSpec struct {
	Version          string     `json:"version"`
	Homepage         string     `json:"homepage"`
	ShortDescription string     `json:"shortDescription"`
	Description      string     `json:"description"`
	Platforms        []Platform `json:"platforms"`
}

// Platform is one platform's archive.
type Platform struct {
	Selector Selector `json:"selector"`
	URI      string   `json:"uri"`
	SHA256   string   `json:"sha256"`
	Bin      string   `json:"bin"`
}

// Selector selects a platform by os and arch.
type Selector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// Manifest is the plugin manifest of a version.
func Manifest(version string, platforms []Platform) Plugin {
	p := Plugin{APIVersion: "krew.googlecontainertools.github.com/v1alpha2", Kind: "Plugin"}
	p.Metadata.Name = "roster"
	p.Spec = PluginSpec{Version: version, Homepage: "https://github.com/rosterhq/roster",
		ShortDescription: "Who has what in Roster, why, and what a change would do",
		Description: "kubectl roster answers who has which app account and why, prints the access diff of a change to " +
			"Roster's manifests before it merges (for pull request reviews), suspends people with every account off in " +
			"seconds, and approves access requests and held plans as the authenticated caller.",
		Platforms: platforms}
	return p
}
