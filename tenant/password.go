package tenant

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinPasswordLength is the shortest password Add and Rotate accept.
const MinPasswordLength = 16

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// GeneratePassword returns a random password of 32 URL-safe characters (192 bits), usable in a URI as is.
func GeneratePassword() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidatePassword rejects passwords elt does not set: too short, or with characters outside printable ASCII
// (PostgreSQL normalizes non-ASCII passwords with SASLprep, which this package does not implement).
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return fmt.Errorf("password is shorter than %d characters", MinPasswordLength)
	}
	for _, r := range pw {
		if r < 0x21 || r > 0x7e {
			return errors.New("password must be printable ASCII without spaces")
		}
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for pw, in the form ALTER ROLE ...
// PASSWORD accepts: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
func scramVerifier(pw string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, pw, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("derive password verifier: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// quoteLiteral quotes s as an SQL string literal. Only for values this package builds itself (verifiers,
// numbers): utility statements such as ALTER ROLE take no parameters.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// newRoleName returns an opaque login role name: nothing in it relates to the customer.
func newRoleName(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
