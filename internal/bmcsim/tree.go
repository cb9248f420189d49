package bmcsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// root is the Redfish service root path, without its trailing slash.
const root = "/redfish/v1"

// EnvMockup names the environment variable that overrides the mockup
// directory found by [MockupDir].
const EnvMockup = "NODE_HEALER_REDFISH_MOCKUP"

// mockupRel is where the DMTF mockup lives relative to the repository root.
const mockupRel = "../shared/redfish-mockups/public-rackmount1"

// MockupDir returns the DMTF mockup directory: $NODE_HEALER_REDFISH_MOCKUP
// if set, else <repo>/../shared/redfish-mockups/public-rackmount1, where
// <repo> is the nearest directory at or above the working directory that
// holds a go.mod.
func MockupDir() (string, error) {
	if d := os.Getenv(EnvMockup); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			m := filepath.Join(d, mockupRel)
			if _, err := os.Stat(filepath.Join(m, "index.json")); err == nil {
				return m, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("redfish mockup not found above %s (set %s)", wd, EnvMockup)
		}
	}
}

// doc is one static resource of the tree.
type doc struct {
	body        []byte
	contentType string
}

// tree is a mockup loaded into memory, keyed by URL path without a trailing
// slash ("/redfish/v1", "/redfish/v1/Systems", …).
type tree map[string]doc

func loadTree(dir string) (tree, error) {
	t := tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		var ct string
		switch d.Name() {
		case "index.json":
			ct = "application/json"
		case "index.xml":
			ct = "application/xml"
		default:
			return nil
		}
		rel, err := filepath.Rel(dir, filepath.Dir(p))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		key := root
		if rel != "." {
			key += "/" + filepath.ToSlash(rel)
		}
		t[key] = doc{body: b, contentType: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load mockup %s: %w", dir, err)
	}
	if _, ok := t[root]; !ok {
		return nil, fmt.Errorf("load mockup %s: no service root (index.json)", dir)
	}
	return t, nil
}

// templateSystem returns the ID of the first member of the mockup's Systems
// collection.
func (t tree) templateSystem() (string, error) {
	c, ok := t[root+"/Systems"]
	if !ok {
		return "", errors.New("mockup has no Systems collection")
	}
	var coll struct {
		Members []struct {
			ID string `json:"@odata.id"`
		}
	}
	if err := json.Unmarshal(c.body, &coll); err != nil {
		return "", fmt.Errorf("mockup Systems collection: %w", err)
	}
	if len(coll.Members) == 0 {
		return "", errors.New("mockup Systems collection is empty")
	}
	id := strings.TrimPrefix(strings.TrimSuffix(coll.Members[0].ID, "/"), root+"/Systems/")
	if _, ok := t[root+"/Systems/"+id]; !ok {
		return "", fmt.Errorf("mockup system %q has no index.json", id)
	}
	return id, nil
}
