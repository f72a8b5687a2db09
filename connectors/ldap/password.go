package ldap

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"math/big"
	"unicode/utf16"
)

// randomPassword is 32 characters from every class a complexity rule asks for
// (upper, lower, digit, symbol). No one is told it.
func randomPassword() (string, error) {
	classes := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!#%+-.:=?@^_~"}
	all := classes[0] + classes[1] + classes[2] + classes[3]
	out := make([]byte, 32)
	for i := range out {
		set := all
		if i < len(classes) {
			set = classes[i]
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return "", fmt.Errorf("generating a password: %w", err)
		}
		out[i] = set[n.Int64()]
	}
	// Shuffle so that the classes are not in fixed places.
	for i := len(out) - 1; i > 0; i-- {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("generating a password: %w", err)
		}
		j := n.Int64()
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

// unicodePwd is a password as Active Directory's unicodePwd takes it: in double
// quotes, UTF-16 little-endian.
func unicodePwd(password string) string {
	units := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(units))
	for i, u := range units {
		b[2*i], b[2*i+1] = byte(u), byte(u>>8)
	}
	return string(b)
}

// ssha is a salted SHA-1 userPassword value, which slapd checks binds against, so that
// the password is never stored as it is.
func ssha(password string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	sum := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}
