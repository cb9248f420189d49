package deploy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The tests render the kustomization themselves instead of importing
// sigs.k8s.io/kustomize/api (a large dependency tree for the main module).
// The renderer covers exactly the subset of kustomize these manifests use —
// resources (files and folders), configMapGenerator, secretGenerator,
// images (what `kustomize edit set image` writes) — and
// rejects any other kustomization field, so a manifest change that needs
// more fails here loudly instead of being rendered wrongly.
//
// One deliberate difference from `kubectl apply -k`: generated ConfigMaps
// and Secrets keep their plain names (kustomize appends a content hash and
// rewrites every reference to it). The names the workloads reference are
// checked against the generators (TestReferencesResolve), so the rendered
// set is consistent either way.

// kustomization is the supported subset; unknown fields are errors.
type kustomization struct {
	APIVersion         string      `yaml:"apiVersion"`
	Kind               string      `yaml:"kind"`
	Resources          []string    `yaml:"resources"`
	ConfigMapGenerator []generator `yaml:"configMapGenerator"`
	SecretGenerator    []generator `yaml:"secretGenerator"`
	// Images is what `kustomize edit set image` writes.
	Images []image `yaml:"images"`
}

type image struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
	Digest  string `yaml:"digest"`
}

type generator struct {
	Name      string   `yaml:"name"`
	Namespace string   `yaml:"namespace"`
	Files     []string `yaml:"files"`
	Literals  []string `yaml:"literals"`
	Type      string   `yaml:"type"`
	Options   struct {
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"options"`
}

// object is one rendered resource and the file it came from.
type object struct {
	*unstructured.Unstructured
	Source string
}

func (o object) String() string {
	ns := o.GetNamespace()
	if ns != "" {
		ns += "/"
	}
	return fmt.Sprintf("%s %s%s (%s)", o.GetKind(), ns, o.GetName(), o.Source)
}

// rendering is the output of render: the objects, and the secret files
// that were missing (their values are placeholders).
type rendering struct {
	Objects        []object
	MissingSecrets []string
}

// render builds the kustomization in dir (and every folder it includes).
// Secret files that do not exist are replaced by placeholder values: the
// real ones are never committed (base/secrets/.gitignore).
func render(dir string) (*rendering, error) {
	r := &rendering{}
	if err := r.build(dir, map[string]bool{}); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, o := range r.Objects {
		key := o.GroupVersionKind().GroupKind().String() + " " + o.GetNamespace() + "/" + o.GetName()
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s defined twice: %s and %s", key, prev, o.Source)
		}
		seen[key] = o.Source
	}
	return r, nil
}

func (r *rendering) build(dir string, visiting map[string]bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if visiting[abs] {
		return fmt.Errorf("%s: kustomization cycle", dir)
	}
	visiting[abs] = true
	defer delete(visiting, abs)

	path := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		return fmt.Errorf("%s: %w (the test renderer supports resources, configMapGenerator, secretGenerator and images only; extend render_test.go)", path, err)
	}
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		return fmt.Errorf("%s: want kind Kustomization, apiVersion kustomize.config.k8s.io/v1beta1", path)
	}
	first := len(r.Objects)
	for _, res := range k.Resources {
		p := filepath.Join(dir, res)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: resources: %w", path, err)
		}
		if fi.IsDir() {
			if err := r.build(p, visiting); err != nil {
				return err
			}
			continue
		}
		objs, err := readManifests(p)
		if err != nil {
			return err
		}
		r.Objects = append(r.Objects, objs...)
	}
	for _, g := range k.ConfigMapGenerator {
		o, err := r.generate(dir, path, g, false)
		if err != nil {
			return err
		}
		r.Objects = append(r.Objects, o)
	}
	for _, g := range k.SecretGenerator {
		o, err := r.generate(dir, path, g, true)
		if err != nil {
			return err
		}
		r.Objects = append(r.Objects, o)
	}
	for _, o := range r.Objects[first:] {
		if err := setImages(o.Object, k.Images); err != nil {
			return fmt.Errorf("%s: images: %s: %w", path, o, err)
		}
	}
	return nil
}

// setImages rewrites container images whose name (without tag or
// digest) matches an images entry, like kustomize's image transformer, in
// the pod templates of workloads.
func setImages(obj map[string]any, images []image) error {
	if len(images) == 0 {
		return nil
	}
	for _, field := range []string{"containers", "initContainers"} {
		cs, found, err := unstructured.NestedSlice(obj, "spec", "template", "spec", field)
		if err != nil || !found {
			continue
		}
		for _, c := range cs {
			m, _ := c.(map[string]any)
			ref, _ := m["image"].(string)
			name, tag, digest := ref, "", ""
			if i := strings.Index(name, "@"); i >= 0 {
				name, digest = name[:i], name[i:]
			}
			if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
				name, tag = name[:i], name[i:]
			}
			for _, img := range images {
				if img.Name != name {
					continue
				}
				if img.NewName != "" {
					name = img.NewName
				}
				if img.NewTag != "" {
					tag, digest = ":"+img.NewTag, ""
				}
				if img.Digest != "" {
					tag, digest = "", "@"+img.Digest
				}
				m["image"] = name + tag + digest
			}
		}
		if err := unstructured.SetNestedSlice(obj, cs, "spec", "template", "spec", field); err != nil {
			return err
		}
	}
	return nil
}

// generate builds a ConfigMap or Secret as kustomize does: a file's key is
// its base name unless given as key=path; literals are key=value.
func (r *rendering) generate(dir, kpath string, g generator, secret bool) (object, error) {
	if g.Name == "" {
		return object{}, fmt.Errorf("%s: generator without a name", kpath)
	}
	data := map[string]string{}
	add := func(k, v string) error {
		if _, dup := data[k]; dup {
			return fmt.Errorf("%s: generator %s: key %q twice", kpath, g.Name, k)
		}
		data[k] = v
		return nil
	}
	for _, f := range g.Files {
		key, p, ok := strings.Cut(f, "=")
		if !ok {
			key, p = filepath.Base(f), f
		}
		b, err := os.ReadFile(filepath.Join(dir, p))
		switch {
		case secret && errors.Is(err, fs.ErrNotExist):
			r.MissingSecrets = append(r.MissingSecrets, filepath.Join(dir, p))
			b = []byte("placeholder-" + key)
		case err != nil:
			return object{}, fmt.Errorf("%s: generator %s: %w", kpath, g.Name, err)
		}
		if err := add(key, string(b)); err != nil {
			return object{}, err
		}
	}
	for _, l := range g.Literals {
		key, v, ok := strings.Cut(l, "=")
		if !ok {
			return object{}, fmt.Errorf("%s: generator %s: literal %q is not key=value", kpath, g.Name, l)
		}
		if err := add(key, v); err != nil {
			return object{}, err
		}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1"}}
	u.SetName(g.Name)
	u.SetNamespace(g.Namespace)
	if len(g.Options.Labels) > 0 {
		u.SetLabels(g.Options.Labels)
	}
	if len(g.Options.Annotations) > 0 {
		u.SetAnnotations(g.Options.Annotations)
	}
	m := map[string]any{}
	if secret {
		u.SetKind("Secret")
		t := g.Type
		if t == "" {
			t = "Opaque"
		}
		u.Object["type"] = t
		for k, v := range data {
			m[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	} else {
		u.SetKind("ConfigMap")
		for k, v := range data {
			m[k] = v
		}
	}
	u.Object["data"] = m
	return object{Unstructured: u, Source: kpath + " (generator " + g.Name + ")"}, nil
}

// readManifests splits a multi-document YAML file into objects.
func readManifests(path string) ([]object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseManifests(f, path)
}

func parseManifests(r io.Reader, source string) ([]object, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []object
	for i := 0; ; i++ {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue // comments only
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		out = append(out, object{Unstructured: u, Source: source})
	}
}

// renderT renders deploy/ or fails the test.
func renderT(t testing.TB) *rendering {
	t.Helper()
	r, err := render(".")
	if err != nil {
		t.Fatalf("render deploy/: %v", err)
	}
	if len(r.Objects) == 0 {
		t.Fatal("render deploy/: no objects")
	}
	return r
}

// find returns the one rendered object of kind and name, or fails.
func (r *rendering) find(t testing.TB, kind, name string) object {
	t.Helper()
	var found []object
	for _, o := range r.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q in the rendered manifests, found %d", kind, name, len(found))
	}
	return found[0]
}

func (r *rendering) ofKind(kinds ...string) []object {
	var out []object
	for _, o := range r.Objects {
		for _, k := range kinds {
			if o.GetKind() == k {
				out = append(out, o)
			}
		}
	}
	return out
}
