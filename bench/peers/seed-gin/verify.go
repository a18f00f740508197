package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"sort"
	"strings"
)

var alipayPublicKey *rsa.PublicKey

func loadAlipayPublicKey(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return errors.New("no PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return errors.New("not an RSA key")
	}
	alipayPublicKey = rsaKey
	return nil
}

// VerifySign checks Alipay's RSA2 signature (the article calls it but does not show it; this is
// Alipay's documented rule): every parameter but sign and sign_type, sorted by key, joined as
// k=v with &, empty values included, verified as SHA256withRSA (PKCS#1 v1.5).
func VerifySign(req PayCallbackRequest) bool {
	keys := make([]string, 0, len(req.Params))
	for k := range req.Params {
		if k != "sign" && k != "sign_type" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = k + "=" + req.Params.Get(k)
	}
	digest := sha256.Sum256([]byte(strings.Join(pairs, "&")))
	signature, err := base64.StdEncoding.DecodeString(req.Sign)
	if err != nil {
		return false
	}
	return rsa.VerifyPKCS1v15(alipayPublicKey, crypto.SHA256, digest[:], signature) == nil
}
