package deploy

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// digestRef is a fully qualified image pinned by digest:
// registry/repository:tag@sha256:<64 hex>. The tag stays for humans; the
// kubelet pulls by the digest.
var digestRef = regexp.MustCompile(`^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$`)

// unpinned are the images deploy/ may reference by tag only, each with why.
// An entry that gets pinned must be removed (the test says so), so this
// list only ever shrinks.
var unpinned = map[string]string{
	// Our own image: the release pipeline sets it with `kustomize edit set
	// image ...@sha256:` from the digest it just pushed.
	"ghcr.io/node-healer/node-healer": "built and pinned by the release",
	// No record of v1.34.0's digest reachable from where this project is
	// built (no registry access; the image promoter's manifest in
	// kubernetes/k8s.io was not available at that version); see
	// deploy/README.md "Images".
	"registry.k8s.io/node-problem-detector/node-problem-detector": "digest not verifiable here",
}

// TestImagesPinnedByDigest: every third-party image deploy/ runs — the
// containers of every workload and the node-exec pods' image in the
// receiver's config — is pinned by digest, or is one of the listed
// exceptions.
func TestImagesPinnedByDigest(t *testing.T) {
	r := renderT(t)
	refs := map[string]string{} // image → where
	for _, o := range r.Objects {
		for _, path := range [][]string{{"spec", "template", "spec"}, {"spec"}} {
			spec, ok, _ := unstructured.NestedMap(o.Object, path...)
			if !ok {
				continue
			}
			for _, field := range []string{"initContainers", "containers"} {
				cs, _, _ := unstructured.NestedSlice(spec, field)
				for _, c := range cs {
					if m, ok := c.(map[string]any); ok {
						if img, _ := m["image"].(string); img != "" {
							refs[img] = o.String()
						}
					}
				}
			}
		}
	}
	cm := r.find(t, "ConfigMap", "node-healer-config")
	data, _ := cm.Object["data"].(map[string]any)
	text, _ := data[configFileName].(string)
	if img := parseConfig(t, text).NodeExec.Image; img == "" {
		t.Error("node_exec.image is not set in the shipped config: node-healer's default is a tag")
	} else {
		refs[img] = "node_exec.image in " + configFileName
	}
	if len(refs) < 4 {
		t.Fatalf("found only %d images (%v): the walk over the rendered objects is broken", len(refs), refs)
	}
	seen := map[string]bool{}
	var images []string
	for img := range refs {
		images = append(images, img)
	}
	sort.Strings(images)
	for _, img := range images {
		name := repository(img)
		if why, ok := unpinned[name]; ok {
			seen[name] = true
			if strings.Contains(img, "@sha256:") {
				t.Errorf("%s (%s) is pinned now: remove it from unpinned (%s)", img, refs[img], why)
			}
			continue
		}
		if !digestRef.MatchString(img) {
			t.Errorf("%s (%s) is not pinned by digest: use registry/repository:tag@sha256:… (or list it in unpinned with the reason)", img, refs[img])
		}
	}
	for name := range unpinned {
		if !seen[name] {
			t.Errorf("unpinned lists %s, which deploy/ no longer uses: remove it", name)
		}
	}
}

// repository is an image reference without its tag and digest.
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/redis:7.2.16-alpine@sha256:ab": "docker.io/library/redis",
		"localhost:5000/x/y:1":                            "localhost:5000/x/y",
		"localhost:5000/x/y":                              "localhost:5000/x/y",
		"busybox":                                         "busybox",
	} {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
}
