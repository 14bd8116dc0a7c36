// check.go: the Go side of the macaroon interop check, built on
// gopkg.in/macaroon.v2, the library Aperture uses.
//
// Build (Debian: golang-go golang-gopkg-macaroon.v2-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o check-go check.go
//
// Subcommands (hex is lowercase; base64 is standard, padded):
//
//	vector
//	    libmacaroons' classic vector: proves the library derives the key with
//	    HMAC-SHA256("macaroons-key-generator", root_key) like everyone else.
//	mint --root-key HEX (--id-hex HEX | --id-text S) [--location L] [--caveat C]...
//	    prints the base64 of the V2 binary macaroon.
//	verify --root-key HEX --macaroon B64 [--id-hex HEX] [--location L] [--caveat C]...
//	    deserializes the macaroon, then asserts that
//	      - location (default lsat) and identifier (if given) are as expected;
//	      - it verifies with the root key and a checker accepting exactly the
//	        --caveat conditions, which are seen in that order;
//	      - it does NOT verify with a wrong root key;
//	      - it does NOT verify when the checker refuses the last caveat;
//	      - re-serializing gives back the very same bytes.
//	    exit 0 if all hold, 1 otherwise (reason on stderr).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"gopkg.in/macaroon.v2"
)

// caveatList collects repeated --caveat flags, in order.
type caveatList []string

func (c *caveatList) String() string     { return strings.Join(*c, ",") }
func (c *caveatList) Set(v string) error { *c = append(*c, v); return nil }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go: "+format+"\n", args...)
	os.Exit(1)
}

func mustHex(name, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		fail("bad hex in %s: %v", name, err)
	}
	return b
}

// mint builds a V2 macaroon; macaroon.New derives the key internally.
func mint(rootKey, id []byte, loc string, caveats []string) *macaroon.Macaroon {
	m, err := macaroon.New(rootKey, id, loc, macaroon.V2)
	if err != nil {
		fail("New: %v", err)
	}
	for _, c := range caveats {
		if err := m.AddFirstPartyCaveat([]byte(c)); err != nil {
			fail("AddFirstPartyCaveat: %v", err)
		}
	}
	return m
}

// verifyWith runs the library's Verify with a checker that accepts exactly
// the expected conditions (refusing `refuse` if not empty) and returns the
// conditions the checker saw, in order.
func verifyWith(m *macaroon.Macaroon, rootKey []byte, expected []string, refuse string) ([]string, error) {
	var seen []string
	err := m.Verify(rootKey, func(cond string) error {
		seen = append(seen, cond)
		if cond == refuse {
			return errors.New("refused on purpose")
		}
		for _, e := range expected {
			if cond == e {
				return nil
			}
		}
		return fmt.Errorf("unexpected caveat %q", cond)
	}, nil)
	return seen, err
}

func cmdVector() {
	m := mint([]byte("this is our super secret key; only we should know it"),
		[]byte("we used our secret key"), "http://mybank/", nil)
	got := hex.EncodeToString(m.Signature())
	const want = "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
	if got != want {
		fail("libmacaroons vector: signature %s, want %s", got, want)
	}
	if err := m.AddFirstPartyCaveat([]byte("account = 3735928559")); err != nil {
		fail("%v", err)
	}
	got = hex.EncodeToString(m.Signature())
	const want2 = "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128"
	if got != want2 {
		fail("libmacaroons vector with caveat: signature %s, want %s", got, want2)
	}
	fmt.Println("go: libmacaroons vector ok")
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: check-go vector|mint|verify [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	rootKeyHex := fs.String("root-key", "", "root key, hex")
	idHex := fs.String("id-hex", "", "identifier, hex")
	idText := fs.String("id-text", "", "identifier, text")
	loc := fs.String("location", "lsat", "location")
	b64 := fs.String("macaroon", "", "macaroon, standard base64")
	var caveats caveatList
	fs.Var(&caveats, "caveat", "first-party caveat (repeatable)")
	fs.Parse(os.Args[2:])

	switch os.Args[1] {
	case "vector":
		cmdVector()

	case "mint":
		id := []byte(*idText)
		if *idHex != "" {
			id = mustHex("--id-hex", *idHex)
		}
		m := mint(mustHex("--root-key", *rootKeyHex), id, *loc, caveats)
		data, err := m.MarshalBinary()
		if err != nil {
			fail("MarshalBinary: %v", err)
		}
		fmt.Println(base64.StdEncoding.EncodeToString(data))

	case "verify":
		rootKey := mustHex("--root-key", *rootKeyHex)
		// Our side promises standard padded base64: decode strictly.
		raw, err := base64.StdEncoding.Strict().DecodeString(*b64)
		if err != nil {
			fail("not standard padded base64: %v", err)
		}
		var m macaroon.Macaroon
		if err := m.UnmarshalBinary(raw); err != nil {
			fail("UnmarshalBinary: %v", err)
		}
		if m.Version() != macaroon.V2 {
			fail("version %v, want V2", m.Version())
		}
		if m.Location() != *loc {
			fail("location %q, want %q", m.Location(), *loc)
		}
		if *idHex != "" && hex.EncodeToString(m.Id()) != *idHex {
			fail("identifier %x, want %s", m.Id(), *idHex)
		}
		seen, err := verifyWith(&m, rootKey, caveats, "")
		if err != nil {
			fail("does not verify with the right root key: %v", err)
		}
		if strings.Join(seen, "\n") != strings.Join(caveats, "\n") {
			fail("caveats %q, want %q", seen, []string(caveats))
		}
		wrong := append([]byte(nil), rootKey...)
		wrong[len(wrong)-1] ^= 1
		if _, err := verifyWith(&m, wrong, caveats, ""); err == nil {
			fail("verifies with a WRONG root key")
		}
		if len(caveats) > 0 {
			if _, err := verifyWith(&m, rootKey, caveats, caveats[len(caveats)-1]); err == nil {
				fail("verifies although the checker refused a caveat")
			}
		}
		again, err := m.MarshalBinary()
		if err != nil {
			fail("MarshalBinary: %v", err)
		}
		if !bytes.Equal(again, raw) {
			fail("re-serialized bytes differ:\n in  %x\n out %x", raw, again)
		}
		fmt.Printf("go: ok, id %x, %d caveats, signature %x\n", m.Id(), len(seen), m.Signature())

	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}
