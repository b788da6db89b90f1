// Command report turns a Ginkgo JSON report of the upstream conformance
// specs into the summary docs/conformance.md carries, and turns the smoke
// list into a focus expression.
//
//	report summarize -json report.json -areas areas.txt [-cmd "make conformance"] [-passed passed.txt]
//	report focus smoke.txt
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: report summarize|focus ...")
	}
	switch os.Args[1] {
	case "summarize":
		fs := flag.NewFlagSet("summarize", flag.ExitOnError)
		jsonPath := fs.String("json", "", "Ginkgo JSON report")
		logPath := fs.String("log", "", "Ginkgo -v log, read when the JSON report is missing or empty (a Ginkgo process died before reporting)")
		areasPath := fs.String("areas", "", "file of `regexp<TAB>area` lines naming why specs fail")
		command := fs.String("cmd", "make conformance", "command that produced the report")
		passedPath := fs.String("passed", "", "write the names of passing specs here")
		fs.Parse(os.Args[2:])
		specs, err := loadReport(*jsonPath)
		if (err != nil || len(specs) == 0) && *logPath != "" {
			if err != nil {
				log.Printf("%v; reading the -v log instead", err)
			}
			specs, err = loadLog(*logPath)
		}
		if err != nil {
			log.Fatal(err)
		}
		areas, err := loadAreas(*areasPath)
		if err != nil {
			log.Fatal(err)
		}
		writeSummary(os.Stdout, specs, areas, *command, time.Now().UTC())
		if *passedPath != "" {
			if err := writePassed(*passedPath, specs); err != nil {
				log.Fatal(err)
			}
		}
	case "focus":
		if len(os.Args) != 3 {
			log.Fatal("usage: report focus smoke.txt")
		}
		re, err := focus(os.Args[2])
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(re)
	default:
		log.Fatalf("unknown subcommand %q", os.Args[1])
	}
}

// spec is one conformance spec's outcome.
type spec struct {
	Name    string
	SIG     string
	State   string // passed, failed, skipped, ...
	Reason  string // first line of the failure
	RunTime time.Duration
}

// ginkgoReport holds the fields of Ginkgo's JSON report this tool reads.
type ginkgoReport struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeText            string
		LeafNodeType            string
		State                   string
		RunTime                 int64
		Failure                 struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

var sigPattern = regexp.MustCompile(`\[sig-[a-z0-9-]+\]`)

// loadReport reads the conformance specs (named [Conformance]) of every
// suite in a Ginkgo JSON report.
func loadReport(path string) ([]spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reports []ginkgoReport
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var specs []spec
	for _, r := range reports {
		for _, sr := range r.SpecReports {
			if sr.LeafNodeType != "It" {
				continue
			}
			name := strings.Join(append(append([]string{}, sr.ContainerHierarchyTexts...), sr.LeafNodeText), " ")
			if !strings.Contains(name, "[Conformance]") {
				continue
			}
			s := spec{Name: name, SIG: sigPattern.FindString(name), State: sr.State, RunTime: time.Duration(sr.RunTime)}
			if s.SIG == "" {
				s.SIG = "[other]"
			}
			if sr.State != "passed" && sr.State != "skipped" && sr.State != "pending" {
				s.Reason = firstLine(sr.Failure.Message)
			}
			specs = append(specs, s)
		}
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs, nil
}

// resultLine is a spec's result in a Ginkgo -v log: "• [12.3 seconds]"
// (passed) or "• [FAILED] [12.3 seconds]" (or PANICKED, TIMEDOUT, ...);
// the spec's name is on the next line, its failure in "[FAILED] ..." lines
// below.
var (
	resultLine  = regexp.MustCompile(`^•(?: \[([A-Z]+)\])? \[[0-9.]+ seconds\]`)
	labelSuffix = regexp.MustCompile(` \[[^\]]*\]$`)
	failureLine = regexp.MustCompile(`^\s+\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED)\] (.*)$`)
)

// loadLog reads the conformance specs' outcomes from a Ginkgo -v log,
// for runs whose JSON report was never written. Run times are not kept.
func loadLog(path string) ([]spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var specs []spec
	var cur *spec
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	nameNext := false
	for sc.Scan() {
		line := sc.Text()
		if nameNext {
			nameNext = false
			// "<containers> [It] <leaf> [labels]": the name upstream's
			// JSON report gives is the same without "[It]" and labels.
			name := strings.Replace(strings.TrimSpace(line), " [It] ", " ", 1)
			name = labelSuffix.ReplaceAllString(name, "")
			if strings.Contains(name, "[Conformance]") {
				cur.Name, cur.SIG = name, sigPattern.FindString(name)
				if cur.SIG == "" {
					cur.SIG = "[other]"
				}
				specs = append(specs, *cur)
				cur = &specs[len(specs)-1]
			} else {
				cur = nil
			}
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			state := "passed"
			if m[1] != "" {
				state = strings.ToLower(m[1])
			}
			cur, nameNext = &spec{State: state}, true
			continue
		}
		if cur != nil && cur.State != "passed" && cur.Reason == "" {
			if m := failureLine.FindStringSubmatch(line); m != nil && !strings.HasPrefix(m[2], "in [") {
				cur.Reason = firstLine(m[2])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs, nil
}

// firstLine keeps a failure message to one short line.
func firstLine(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.ReplaceAll(msg, "|", `\|`)
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// area is why a group of specs fails: the feature or bug they wait on.
type area struct {
	re   *regexp.Regexp
	text string
}

func loadAreas(path string) ([]area, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []area
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pat, text, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want `regexp<TAB>area`", path, n)
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, area{re: re, text: strings.TrimSpace(text)})
	}
	return out, sc.Err()
}

func areaOf(areas []area, s spec) string {
	for _, a := range areas {
		if a.re.MatchString(s.Name) {
			return a.text
		}
	}
	return "untriaged"
}

// writeSummary prints the per-SIG table and every failing spec with its
// area and reason, as Markdown.
func writeSummary(w io.Writer, specs []spec, areas []area, command string, now time.Time) {
	type counts struct{ run, passed, failed, skipped int }
	bySIG := map[string]*counts{}
	var total counts
	for _, s := range specs {
		c := bySIG[s.SIG]
		if c == nil {
			c = &counts{}
			bySIG[s.SIG] = c
		}
		for _, c := range []*counts{c, &total} {
			switch s.State {
			case "skipped", "pending":
				c.skipped++
			case "passed":
				c.run++
				c.passed++
			default:
				c.run++
				c.failed++
			}
		}
	}
	sigs := make([]string, 0, len(bySIG))
	for sig := range bySIG {
		sigs = append(sigs, sig)
	}
	sort.Strings(sigs)
	fmt.Fprintf(w, "Run %s with `%s`.\n\n", now.Format("2006-01-02 15:04 MST"), command)
	fmt.Fprintln(w, "| SIG | run | passed | failed | skipped |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, sig := range sigs {
		c := bySIG[sig]
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d |\n", strings.Trim(sig, "[]"), c.run, c.passed, c.failed, c.skipped)
	}
	fmt.Fprintf(w, "| **all** | **%d** | **%d** | **%d** | **%d** |\n\n", total.run, total.passed, total.failed, total.skipped)

	byArea := map[string][]spec{}
	for _, s := range specs {
		if s.State == "passed" || s.State == "skipped" || s.State == "pending" {
			continue
		}
		a := areaOf(areas, s)
		byArea[a] = append(byArea[a], s)
	}
	names := make([]string, 0, len(byArea))
	for a := range byArea {
		names = append(names, a)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "### Failing specs by area")
	fmt.Fprintln(w)
	for _, a := range names {
		fmt.Fprintf(w, "#### %s (%d)\n\n", a, len(byArea[a]))
		fmt.Fprintln(w, "| spec | state | reason |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, s := range byArea[a] {
			fmt.Fprintf(w, "| %s | %s | %s |\n", strings.ReplaceAll(s.Name, "|", `\|`), s.State, s.Reason)
		}
		fmt.Fprintln(w)
	}
}

func writePassed(path string, specs []spec) error {
	var b strings.Builder
	for _, s := range specs {
		if s.State == "passed" {
			b.WriteString(s.Name + "\n")
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// focus turns a list of spec names (one per line, # comments) into a
// regular expression matching those specs (and any spec a name is part of).
func focus(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var alts []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		alts = append(alts, regexp.QuoteMeta(line))
	}
	if len(alts) == 0 {
		return "", fmt.Errorf("%s: no specs", path)
	}
	return strings.Join(alts, "|"), nil
}
