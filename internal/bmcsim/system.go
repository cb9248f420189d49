package bmcsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
)

const resetKey = "#ComputerSystem.Reset"

// timeFormat is Redfish's DateTime with milliseconds (the simulated boots
// of tests last fractions of a second).
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// systemPath is the URL path of a system resource.
func systemPath(id string) string { return root + "/Systems/" + id }

// rewrite replaces the template system's path with id's in a body.
func (s *Sim) rewrite(b []byte, id string) []byte {
	if id == s.template {
		return b
	}
	return bytes.ReplaceAll(b, []byte(systemPath(s.template)), []byte(systemPath(id)))
}

// cloneSystem decodes the template system resource rewritten for id and
// returns it with its advertised reset types.
func (s *Sim) cloneSystem(id string) (map[string]any, []string, error) {
	var body map[string]any
	if err := json.Unmarshal(s.rewrite(s.tree[systemPath(s.template)].body, id), &body); err != nil {
		return nil, nil, fmt.Errorf("mockup system %s: %w", s.template, err)
	}
	if id != s.template {
		body["Id"] = id
		body["Name"] = id
		body["HostName"] = id
		body["SerialNumber"] = id
		body["UUID"] = uuidFor(id)
	}
	var allowed []string
	if a, ok := body["Actions"].(map[string]any); ok {
		if r, ok := a[resetKey].(map[string]any); ok {
			vals, _ := r["ResetType@Redfish.AllowableValues"].([]any)
			for _, v := range vals {
				if str, ok := v.(string); ok {
					allowed = append(allowed, str)
				}
			}
		}
	}
	if len(allowed) == 0 {
		allowed = slices.DeleteFunc(slices.Clone(standardResetTypes), func(v string) bool { return v == "PowerCycle" })
	}
	return body, allowed, nil
}

// renderSystem is the system resource as served now. Call with s.mu held.
func (s *Sim) renderSystem(id string, sys *system) ([]byte, error) {
	// Round-trip through JSON for a deep copy of the template body.
	raw, err := json.Marshal(sys.body)
	if err != nil {
		return nil, err
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, err
	}
	body["PowerState"] = sys.state
	if sys.faults.NoBootProgress {
		delete(body, "BootProgress")
	} else {
		bp := map[string]any{"LastState": sys.boot, "LastStateTime": sys.bootAt.Format(timeFormat)}
		if sys.booted > 0 {
			bp["LastBootTimeSeconds"] = sys.booted
		}
		body["BootProgress"] = bp
	}
	actions, _ := body["Actions"].(map[string]any)
	if actions == nil {
		actions = map[string]any{}
		body["Actions"] = actions
	}
	reset := map[string]any{"target": systemPath(id) + "/Actions/ComputerSystem.Reset"}
	if sys.cfg.ActionInfo {
		reset["@Redfish.ActionInfo"] = systemPath(id) + "/ResetActionInfo"
	} else {
		reset["ResetType@Redfish.AllowableValues"] = sys.allowed
	}
	actions[resetKey] = reset
	return json.MarshalIndent(body, "", "    ")
}

// renderActionInfo is the system's ResetActionInfo resource.
func renderActionInfo(id string, sys *system) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"@odata.type": "#ActionInfo.v1_3_0.ActionInfo",
		"@odata.id":   systemPath(id) + "/ResetActionInfo",
		"Id":          "ResetActionInfo",
		"Name":        "Reset Action Info",
		"Parameters": []map[string]any{{
			"Name":            "ResetType",
			"Required":        true,
			"DataType":        "String",
			"AllowableValues": sys.allowed,
		}},
	}, "", "    ")
}

// renderCollection is the Systems collection of the simulated systems.
func (s *Sim) renderCollection() ([]byte, error) {
	members := make([]map[string]string, 0, len(s.order))
	for _, id := range s.order {
		members = append(members, map[string]string{"@odata.id": systemPath(id)})
	}
	return json.MarshalIndent(map[string]any{
		"@odata.type":         "#ComputerSystemCollection.ComputerSystemCollection",
		"@odata.id":           root + "/Systems",
		"Name":                "Computer System Collection",
		"Members@odata.count": len(members),
		"Members":             members,
	}, "", "    ")
}

// uuidFor derives a stable, distinct UUID (version 8 layout) from a system ID.
func uuidFor(id string) string {
	h := sha256.Sum256([]byte("bmcsim/" + id))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
