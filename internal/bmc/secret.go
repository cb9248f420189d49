package bmc

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secret is a credential. Every way of printing, logging or marshalling it
// yields "<secret>"; only Reveal returns the value.
type Secret string

const redacted = "<secret>"

// String implements fmt.Stringer (used by %v, %s, %q, %x …).
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so no verb reaches the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (JSON, YAML, slog text).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// ReadSecret reads a credential file; one trailing newline (CRLF or LF) is
// dropped. An empty secret is an error. Errors name the file, never the
// content.
func ReadSecret(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read credential file: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("credential file %s is empty", path)
	}
	return Secret(v), nil
}
