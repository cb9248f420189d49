package handlers

import (
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// amPayload is the part of Alertmanager's webhook message (version 4,
// github.com/prometheus/alertmanager/notify/webhook.Message) that the
// webhook reads. It is our own type, not webhook.Message, because decoding
// is the handler's largest cost at fleet scale (100-alert payloads at
// 50/s): skipping what node-healer never reads (annotations, group and
// common labels, URLs) and decoding with go-json-experiment/json (the
// implementation behind Go's encoding/json/v2, already in the module graph
// through client-go) takes a third of the CPU and of the allocations of
// encoding/json into webhook.Message (docs/benchmarks.md, "Webhook
// decoding"). TestPayloadMatchesAlertmanager checks it reads what
// Alertmanager's own type marshals.
type amPayload struct {
	Version string    `json:"version"`
	Alerts  []amAlert `json:"alerts"`
}

type amAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// decodeOptions keep encoding/json's leniency (a repeated member: the last
// wins; invalid UTF-8 replaced; member names matched case-insensitively),
// so the change of decoder refuses nothing it used to take.
var decodeOptions = json.JoinOptions(
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
	json.MatchCaseInsensitiveNames(true),
)

func decodePayload(body []byte) (amPayload, error) {
	var p amPayload
	err := json.Unmarshal(body, &p, decodeOptions)
	return p, err
}
