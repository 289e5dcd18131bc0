package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainLinesReportFirstAndLast(t *testing.T) {
	var buf bytes.Buffer
	b := NewWriter(&buf, false, "embed", 3, "images")
	b.Add(1)
	b.Add(1)
	b.Add(1)
	b.Finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the first and the final line, got %q", lines)
	}
	if !strings.HasPrefix(lines[1], "embed 3/3 images") {
		t.Errorf("last line %q", lines[1])
	}
}

func TestTerminalBarRedraws(t *testing.T) {
	var buf bytes.Buffer
	b := NewWriter(&buf, true, "embed", 2, "images")
	b.Add(2)
	b.Finish()
	if !strings.Contains(buf.String(), "\r[==============================] embed 2/2") {
		t.Errorf("bar output %q", buf.String())
	}
}
