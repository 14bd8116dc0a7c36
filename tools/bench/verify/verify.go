// verify.go: L402 credential verification on gopkg.in/macaroon.v2 (Aperture's library), the
// same work as benches/l402_verify.rs on the same token:
// split "L402 <b64>:<hex>", base64 decode, V2 unmarshal, identifier decode (66 bytes, version 0),
// sha256(preimage) == payment hash, sha256(identifier) (the root key's name), Verify with the
// root key and a checker for services / capabilities / valid_until.
//
// Build: CGO_ENABLED=0 GO111MODULE=off GOPATH=/usr/share/gocode go build -o verify-go verify.go
// Run:   verify-go HEADER ROOT_KEY_HEX NOW SECS ROUNDS   -> one JSON line
// Rates are per second of process CPU time (getrusage); wall_rates per elapsed second.
package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/macaroon.v2"
)

const service = "demo"
const capability = "read"

var errCaveat = errors.New("caveat refused")

func verify(header string, rootKey []byte, now uint64) error {
	header = strings.TrimSpace(header)
	sp := strings.IndexByte(header, ' ')
	if sp < 0 {
		return errors.New("shape")
	}
	scheme := header[:sp]
	if !strings.EqualFold(scheme, "L402") && !strings.EqualFold(scheme, "LSAT") {
		return errors.New("scheme")
	}
	rest := strings.TrimSpace(header[sp+1:])
	colon := strings.LastIndexByte(rest, ':')
	if colon < 0 {
		return errors.New("shape")
	}
	raw, err := base64.StdEncoding.DecodeString(rest[:colon])
	if err != nil {
		return err
	}
	var preimage [32]byte
	if n, err := hex.Decode(preimage[:], []byte(rest[colon+1:])); err != nil || n != 32 {
		return errors.New("preimage")
	}
	var m macaroon.Macaroon
	if err := m.UnmarshalBinary(raw); err != nil {
		return err
	}
	id := m.Id()
	if len(id) != 66 || id[0] != 0 || id[1] != 0 {
		return errors.New("identifier")
	}
	var paymentHash, tokenID [32]byte
	copy(paymentHash[:], id[2:34])
	copy(tokenID[:], id[34:66])
	sum := sha256.Sum256(preimage[:])
	if subtle.ConstantTimeCompare(sum[:], paymentHash[:]) != 1 {
		return errors.New("preimage mismatch")
	}
	keyID := sha256.Sum256(id)
	_ = keyID
	return m.Verify(rootKey, func(caveat string) error {
		eq := strings.IndexByte(caveat, '=')
		if eq < 0 {
			return errCaveat
		}
		cond, value := strings.TrimSpace(caveat[:eq]), strings.TrimSpace(caveat[eq+1:])
		switch {
		case cond == "services":
			for _, s := range strings.Split(value, ",") {
				name, tier, ok := strings.Cut(strings.TrimSpace(s), ":")
				if !ok {
					return errCaveat
				}
				if _, err := strconv.ParseUint(tier, 10, 8); err != nil {
					return errCaveat
				}
				if name == service {
					return nil
				}
			}
			return errCaveat
		case cond == service+"_capabilities":
			for _, c := range strings.Split(value, ",") {
				if strings.TrimSpace(c) == capability {
					return nil
				}
			}
			return errCaveat
		case cond == service+"_valid_until":
			t, err := strconv.ParseUint(value, 10, 64)
			if err != nil || now > t {
				return errCaveat
			}
			return nil
		}
		return errCaveat
	}, nil)
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: verify-go HEADER ROOT_KEY_HEX NOW SECS ROUNDS")
		os.Exit(2)
	}
	header := os.Args[1]
	rootKey, err := hex.DecodeString(os.Args[2])
	if err != nil {
		panic(err)
	}
	now, _ := strconv.ParseUint(os.Args[3], 10, 64)
	secs, _ := strconv.ParseFloat(os.Args[4], 64)
	rounds, _ := strconv.Atoi(os.Args[5])
	if err := verify(header, rootKey, now); err != nil {
		fmt.Fprintln(os.Stderr, "the token does not verify:", err)
		os.Exit(1)
	}
	var rates, wall []float64
	for round := 0; round <= rounds; round++ {
		budget := time.Duration(secs * float64(time.Second))
		if round == 0 {
			budget = 200 * time.Millisecond
		}
		start := time.Now()
		cpu0 := cpuTime()
		n := 0
		for {
			for i := 0; i < 1024; i++ {
				if verify(header, rootKey, now) != nil {
					panic("verification failed")
				}
			}
			n += 1024
			if cpuTime()-cpu0 >= budget {
				break
			}
		}
		if round > 0 {
			rates = append(rates, float64(n)/(cpuTime()-cpu0).Seconds())
			wall = append(wall, float64(n)/time.Since(start).Seconds())
		}
	}
	sorted := append([]float64(nil), rates...)
	sort.Float64s(sorted)
	list := func(v []float64) string {
		parts := make([]string, len(v))
		for i, r := range v {
			parts[i] = fmt.Sprintf("%.0f", r)
		}
		return strings.Join(parts, ",")
	}
	fmt.Printf("{\"impl\":\"go macaroon.v2 (%s)\",\"rates\":[%s],\"median\":%.0f,\"best\":%.0f,\"wall_rates\":[%s]}\n",
		goVersion(), list(rates), sorted[len(sorted)/2], sorted[len(sorted)-1], list(wall))
}

// cpuTime is the CPU time of the whole process (user + system, every thread: GC included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
