package demo

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kindOrder applies namespaces first and the DirectorySync last.
var kindOrder = map[string]int{"Namespace": 0, "Secret": 1, "ConfigMap": 1, "AppConnection": 2, "Role": 3, "Notifier": 3, "DirectorySync": 4}

// readObjects reads every object in the YAML files of dir (only those named, if any), in
// the order to apply them.
func readObjects(dir string, only ...string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" || len(only) > 0 && !slices.Contains(only, filepath.Base(f)) {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
				return nil, err
			}
			if len(obj.Object) > 0 {
				objs = append(objs, obj)
			}
		}
	}
	sort.SliceStable(objs, func(i, j int) bool { return kindOrder[objs[i].GetKind()] < kindOrder[objs[j].GetKind()] })
	return objs, nil
}
