package apiserver

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

func TestWarningRecorderCaps(t *testing.T) {
	long := strings.Repeat("é", 5000) // multi-byte runes: truncation must keep UTF-8 valid
	tests := []struct {
		name string
		add  []string
		// want are the texts of the Warning headers, in order.
		want []string
	}{
		{name: "empty text is ignored", add: []string{""}, want: nil},
		{name: "duplicates are dropped", add: []string{"a", "b", "a"}, want: []string{"a", "b"}},
		{name: "under the total nothing is cut", add: []string{strings.Repeat("x", 300), "y"}, want: []string{strings.Repeat("x", 300), "y"}},
		{name: "one huge warning is cut to 256 runes", add: []string{long}, want: []string{strings.Repeat("é", 256)}},
		{
			name: "crossing the total truncates earlier warnings too",
			add:  []string{strings.Repeat("a", 4000), strings.Repeat("b", 200)},
			want: []string{strings.Repeat("a", 256), strings.Repeat("b", 200)},
		},
		{
			name: "past the total further warnings are dropped",
			add:  manyWarnings(40, 300),
			// 16 truncated warnings of 256 runes fill the 4096-rune total.
			want: truncatedAll(manyWarnings(16, 300)),
		},
		{name: "control characters drop the warning", add: []string{"bad\nname", "ok"}, want: []string{"ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			rec := &warningRecorder{header: h}
			for _, text := range tt.add {
				rec.AddWarning("", text)
			}
			warnings, errs := utilnet.ParseWarningHeaders(h.Values("Warning"))
			if len(errs) > 0 {
				t.Fatalf("malformed Warning headers: %v", errs)
			}
			var got []string
			total := 0
			for _, w := range warnings {
				if w.Code != 299 || w.Agent != "-" {
					t.Errorf("warning %+v: want code 299, agent -", w)
				}
				got = append(got, w.Text)
				total += utf8.RuneCountInString(w.Text)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %d warnings %.80q..., want %d %.80q...", len(got), got, len(tt.want), tt.want)
			}
			if total > warningTotalRunes {
				t.Fatalf("%d runes of warnings, over the %d cap", total, warningTotalRunes)
			}
		})
	}
}

// manyWarnings returns n distinct warnings of size runes each.
func manyWarnings(n, size int) []string {
	var out []string
	for i := range n {
		out = append(out, string(rune('A'+i))+strings.Repeat("w", size-1))
	}
	return out
}

func truncatedAll(texts []string) []string {
	var out []string
	for _, t := range texts {
		t, _ = truncateWarning(t, utf8.RuneCountInString(t))
		out = append(out, t)
	}
	return out
}
