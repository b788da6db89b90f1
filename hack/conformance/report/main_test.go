package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSummaryCountsPerSIGAndFilesFailuresUnderTheirArea(t *testing.T) {
	specs, err := loadReport("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 4 {
		t.Fatalf("want the 4 conformance specs, got %d: %+v", len(specs), specs)
	}
	areasFile := filepath.Join(t.TempDir(), "areas.txt")
	os.WriteFile(areasFile, []byte("# comment\nCustomResourceDefinition\tneeds CRDs (issue 19)\n"), 0o644)
	areas, err := loadAreas(areasFile)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeSummary(&b, specs, areas, "make conformance", time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC))
	out := b.String()
	for _, want := range []string{
		"Run 2026-12-06 05:00 UTC with `make conformance`.",
		"| sig-apps | 1 | 0 | 1 | 1 |",
		"| sig-node | 1 | 1 | 0 | 0 |",
		"| **all** | **3** | **1** | **2** | **1** |",
		"#### needs CRDs (issue 19) (1)",
		"#### untriaged (1)",
		`| [sig-apps] Job should allow to use a pod failure policy [Conformance] | failed | timed out waiting \| for job |`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "more detail") {
		t.Errorf("reason kept more than its first line:\n%s", out)
	}
	if _, err := loadAreas(writeFile(t, "no tab here\n")); err == nil {
		t.Error("an areas line without a tab was accepted")
	}
}

func TestFocusMatchesExactlyTheListedNames(t *testing.T) {
	re, err := focus(writeFile(t, "# smoke\n[sig-node] Pods should get a host IP [NodeConformance] [Conformance]\n\n[sig-apps] Job should run a job (1+1) [Conformance]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := regexp.MustCompile(re)
	for name, want := range map[string]bool{
		"[sig-node] Pods should get a host IP [NodeConformance] [Conformance]": true,
		"[sig-apps] Job should run a job (1+1) [Conformance]":                  true,
		"[sig-apps] Job should run a job (11) [Conformance]":                   false,
		"[sig-node] Pods should be updated [NodeConformance] [Conformance]":    false,
	} {
		if r.MatchString(name) != want {
			t.Errorf("%q matched=%v", name, !want)
		}
	}
	if _, err := focus(writeFile(t, "# nothing\n")); err == nil {
		t.Error("an empty smoke list was accepted")
	}
}

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLogGivesTheOutcomesWhenNoReportWasWritten reads a Ginkgo -v log of
// a run whose processes did not all report back.
func TestLogGivesTheOutcomesWhenNoReportWasWritten(t *testing.T) {
	specs, err := loadLog("testdata/e2e.log")
	if err != nil {
		t.Fatal(err)
	}
	want := []spec{
		{Name: "[sig-apps] CronJob should not schedule new jobs when ForbidConcurrent [Conformance] [Slow]", SIG: "[sig-apps]", State: "passed"},
		{Name: "[sig-scheduling] LimitRange should create a LimitRange with defaults and ensure pod has those defaults applied. [Conformance]",
			SIG: "[sig-scheduling]", State: "failed", Reason: "Expected an error to have occurred.  Got:"},
	}
	if len(specs) != len(want) {
		t.Fatalf("specs = %+v", specs)
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("spec %d = %+v, want %+v", i, specs[i], want[i])
		}
	}
}
