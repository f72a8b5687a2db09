{{/* Objects are named roster-<name>, as config/default names them. */}}
{{- define "roster.name" -}}roster-{{ . }}{{- end -}}

{{- define "roster.labels" -}}
app.kubernetes.io/part-of: roster
{{- end -}}

{{- define "roster.selector" -}}
app.kubernetes.io/name: roster
app.kubernetes.io/component: controller-manager
{{- end -}}

{{/* Every replica of the operator, the main Deployment's and the shards'. */}}
{{- define "roster.pods" -}}
app.kubernetes.io/name: roster
{{- end -}}

{{/* A shard's Deployment: its pods are told apart from the main Deployment's. */}}
{{- define "roster.shardSelector" -}}
app.kubernetes.io/name: roster
app.kubernetes.io/component: controller-manager-shard
identity.roster.dev/shard: {{ . }}
{{- end -}}

{{- define "roster.serviceAccount" -}}system:serviceaccount:{{ .Release.Namespace }}:roster-controller-manager{{- end -}}

{{/*
roster.files renders the objects of a file of config/rbac (linked under files/): named
roster-<name>, namespaced ones in the release's namespace, with the part-of label, and
the operator's service account named for the release's namespace.
*/}}
{{- define "roster.files" -}}
{{- $root := .root -}}
{{- $text := $root.Files.Get .file | replace "system:serviceaccount:roster-system:" (printf "system:serviceaccount:%s:" $root.Release.Namespace) -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" $text -1 }}
{{- $obj := fromYaml $doc -}}
{{- if $obj.kind }}
{{- $_ := set $obj.metadata "name" (include "roster.name" $obj.metadata.name) -}}
{{- $labels := merge (default dict $obj.metadata.labels) (fromYaml (include "roster.labels" $root)) -}}
{{- $_ := set $obj.metadata "labels" $labels -}}
{{- if $obj.metadata.namespace }}{{- $_ := set $obj.metadata "namespace" $root.Release.Namespace -}}{{- end }}
---
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end -}}
