// Command images packs the container images the upstream conformance specs
// use, under their exact names, into one `docker save` tarball, from
// binaries on this machine: agnhost (built from k8s.io/kubernetes by
// hack/conformance/run.sh), Debian's busybox-static, and the host's glibc
// networking tools (dig, nc, curl, ss, ...) that upstream's agnhost image
// carries from Alpine. No registry is contacted.
//
//	go run ./hack/conformance/images -agnhost A -nonewprivs N -porter DIR -out FILE
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff/skiff/test/imagebuild"
)

const (
	e2eRegistry = "registry.k8s.io/e2e-test-images/"
	webRoot     = "usr/share/nginx/html"
)

// requiredTools are the programs upstream specs run inside agnhost and
// glibc-dns-testing pods; optionalTools are added when the host has them.
var (
	requiredTools = []string{"/usr/bin/dig", "/usr/bin/nc", "/usr/bin/curl", "/usr/bin/getent", "/usr/bin/bash"}
	optionalTools = []string{"/usr/bin/ss", "/usr/sbin/ip", "/usr/bin/iperf", "/usr/bin/socat", "/usr/bin/ipcs"}
)

func main() {
	agnhost := flag.String("agnhost", "", "agnhost binary (static)")
	nnp := flag.String("nonewprivs", "", "upstream's nonewprivs binary (static; test/images/nonewprivs)")
	porter := flag.String("porter", "", "agnhost's porter directory (localhost.crt, localhost.key)")
	busybox := flag.String("busybox", imagebuild.BusyboxBinary, "static busybox binary")
	out := flag.String("out", "", "tarball to write")
	flag.Parse()
	if *agnhost == "" || *nnp == "" || *porter == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	images, err := build(*agnhost, *nnp, *porter, *busybox)
	if err != nil {
		log.Fatal(err)
	}
	if err := imagebuild.Save(*out, images); err != nil {
		log.Fatal(err)
	}
	for ref := range images {
		fmt.Println(ref)
	}
}

// build returns every image by reference; images share their lower layers
// so the store keeps one copy of busybox, the tools and agnhost.
func build(agnhostPath, nnpPath, porterDir, busyboxPath string) (map[string]v1.Image, error) {
	bbEntries, err := imagebuild.Busybox(busyboxPath)
	if err != nil {
		return nil, err
	}
	base, err := imagebuild.Layer(bbEntries...)
	if err != nil {
		return nil, err
	}
	tools := requiredTools
	for _, t := range optionalTools {
		if _, err := os.Stat(t); err == nil {
			tools = append(tools, t)
		} else {
			log.Printf("skipping %s: not on this machine", t)
		}
	}
	toolEntries, err := imagebuild.HostBinaries(tools...)
	if err != nil {
		return nil, fmt.Errorf("%w (install bind9-dnsutils netcat-openbsd curl)", err)
	}
	toolLayer, err := imagebuild.Layer(toolEntries...)
	if err != nil {
		return nil, err
	}
	agnhostLayer, err := agnhostFiles(agnhostPath, porterDir)
	if err != nil {
		return nil, err
	}

	images := map[string]v1.Image{}
	add := func(cfg imagebuild.Config, layers []v1.Layer, refs ...string) error {
		img, err := imagebuild.Image(cfg, layers...)
		if err != nil {
			return fmt.Errorf("%s: %w", refs[0], err)
		}
		for _, r := range refs {
			images[r] = img
		}
		return nil
	}
	// Debian's busybox-static sh runs its own applets before PATH (its nc
	// lacks -v/-t) and drops env names with dashes; upstream's agnhost sh
	// does neither, so the agnhost images get bash, from the tools, as sh.
	shLayer, err := imagebuild.Layer(imagebuild.Entry{Path: "bin/sh", Link: "/usr/bin/bash"})
	if err != nil {
		return nil, err
	}
	agnhost := []v1.Layer{base, toolLayer, agnhostLayer, shLayer}
	if err := add(imagebuild.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}}, agnhost,
		e2eRegistry+"agnhost:2.66.1", e2eRegistry+"agnhost:2.55"); err != nil {
		return nil, err
	}
	// glibc-dns-testing is a glibc userland with dig and getent: the tools
	// layer is exactly that.
	if err := add(imagebuild.Config{Cmd: []string{"/bin/sh"}}, agnhost, e2eRegistry+"glibc-dns-testing:2.1.1"); err != nil {
		return nil, err
	}
	// The busybox images get bash as sh for the same reason: the env
	// specs print variables whose names have dashes.
	bashEntries, err := imagebuild.HostBinaries("/usr/bin/bash")
	if err != nil {
		return nil, err
	}
	bashLayer, err := imagebuild.Layer(bashEntries...)
	if err != nil {
		return nil, err
	}
	if err := add(imagebuild.Config{Cmd: []string{"sh"}}, []v1.Layer{base, bashLayer, shLayer},
		e2eRegistry+"busybox:1.37.0-2", e2eRegistry+"busybox:1.36.1-1"); err != nil {
		return nil, err
	}
	if err := add(imagebuild.Config{Cmd: []string{"sh"}, User: "1234"}, []v1.Layer{base}, e2eRegistry+"nonroot:1.5"); err != nil {
		return nil, err
	}
	// nonewprivs is upstream's: a setuid-root program that prints its
	// effective uid (0 unless no_new_privs stops the escalation).
	nnpBin, err := os.ReadFile(nnpPath)
	if err != nil {
		return nil, err
	}
	nnpLayer, err := imagebuild.Layer(imagebuild.Entry{Path: "usr/local/bin/nnp", Data: nnpBin, Mode: 0o4755})
	if err != nil {
		return nil, err
	}
	if err := add(imagebuild.Config{Cmd: []string{"nnp"}}, []v1.Layer{base, nnpLayer}, e2eRegistry+"nonewprivs:1.4"); err != nil {
		return nil, err
	}
	if err := add(imagebuild.Config{Entrypoint: []string{"/agnhost", "pause"}}, []v1.Layer{agnhostLayer}, "registry.k8s.io/pause:3.10.2"); err != nil {
		return nil, err
	}
	// nginx and the update-demo images are static web servers on port 80;
	// busybox's httpd serves the files the specs read.
	for ref, files := range map[string][]imagebuild.Entry{
		e2eRegistry + "nginx:1.27.0-2": nil,
		e2eRegistry + "nginx:1.28.0-2": nil,
		e2eRegistry + "nautilus:1.8":   {{Path: webRoot + "/data.json", Data: []byte(`{"image": "nautilus.jpg"}` + "\n")}},
		e2eRegistry + "kitten:1.8":     {{Path: webRoot + "/data.json", Data: []byte(`{"image": "kitten.jpg"}` + "\n")}},
	} {
		files = append(files, imagebuild.Entry{Path: webRoot + "/index.html", Data: []byte("<html><body><h1>Welcome to nginx!</h1></body></html>\n")})
		web, err := imagebuild.Layer(files...)
		if err != nil {
			return nil, err
		}
		if err := add(imagebuild.Config{Entrypoint: []string{"/bin/httpd", "-f", "-v", "-p", "80", "-h", "/" + webRoot}}, []v1.Layer{base, web}, ref); err != nil {
			return nil, err
		}
	}
	return images, nil
}

// agnhostFiles is the layer upstream's agnhost Dockerfile adds on top of
// its base: the binary, the agnhost-2 alias, porter's TLS pair, /uploads,
// and the user and group the SupplementalGroups specs expect in the image.
func agnhostFiles(agnhostPath, porterDir string) (v1.Layer, error) {
	bin, err := os.ReadFile(agnhostPath)
	if err != nil {
		return nil, err
	}
	entries := []imagebuild.Entry{
		{Path: "agnhost", Data: bin, Mode: 0o755},
		{Path: "agnhost-2", Link: "agnhost"},
		{Path: "uploads", Dir: true},
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")},
	}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		data, err := os.ReadFile(filepath.Join(porterDir, f))
		if err != nil {
			return nil, err
		}
		entries = append(entries, imagebuild.Entry{Path: f, Data: data})
	}
	return imagebuild.Layer(entries...)
}
