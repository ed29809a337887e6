/* sitetoken — key attestation (TPM 2.0): evidence, the auditor's check,
 * credential activation.
 *
 * The evidence (SPEC.md "Key attestation (TPM)") is JSON with the members of
 * the WebAuthn/ACME `tpm` attestation statement, binary members base64url:
 *   {"fmt":"tpm","attStmt":{"ver":"2.0","alg":COSE,"sig":..,"certInfo":..,
 *    "pubArea":..},"akPub":..,"ekCert":..,"ekChain":[..],"nonce":"hex"}
 *
 * The verifier side (parse, verify, make a credential) needs no TPM and no
 * site: an auditor runs it offline. The TPM side (stk_tpm_attest,
 * stk_tpm_activate_credential) is compiled in with the tpm backend.
 *
 * Threads: every function works on caller-owned objects only; distinct
 * objects may be used from distinct threads. */
#ifndef SITETOKEN_ATTEST_H
#define SITETOKEN_ATTEST_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/error.h"
#include "sitetoken/key.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_ATTEST_NONCE_MIN 8   /* bytes: a nonce shorter than this is guessable */
#define STK_ATTEST_NONCE_MAX 64  /* TPM2B_DATA of TPM2_Certify holds at most 64 */
#define STK_ATTEST_CHAIN_MAX 8   /* EK intermediates carried in ekChain */
#define STK_ATTEST_SECRET_MAX 32 /* credential secret (TPM2B_DIGEST, SHA-256) */
#define STK_ATTEST_JSON_MAX 65536

/* COSE algorithm identifiers of the AK. */
#define STK_COSE_RS256 (-257)
#define STK_COSE_ES256 (-7)

/* A blob: malloc'd bytes and their length. */
struct stk_blob {
	unsigned char *p;
	size_t len;
};

/* Parsed (or to-be-serialised) evidence. Every blob is owned by the
 * struct; stk_attest_evidence_free wipes and frees it. */
struct stk_attest_evidence {
	int alg;                   /* COSE alg of the AK signature */
	struct stk_blob sig;       /* RSA PKCS#1 v1.5 bytes or ECDSA DER */
	struct stk_blob cert_info; /* TPMS_ATTEST, marshalled */
	struct stk_blob pub_area;  /* TPMT_PUBLIC of the attested key */
	struct stk_blob ak_pub;    /* TPMT_PUBLIC of the AK */
	struct stk_blob ek_cert;   /* DER */
	size_t nchain;
	struct stk_blob chain[STK_ATTEST_CHAIN_MAX]; /* DER intermediates */
	unsigned char nonce[STK_ATTEST_NONCE_MAX];
	size_t nonce_len;
};

void stk_attest_evidence_free(struct stk_attest_evidence *ev);

/* Strict parse (duplicate members, unknown "fmt"/"ver", bad base64url,
 * wrong types are refused with STK_E_ATTEST and a reason). Blobs are not
 * unmarshalled here; stk_attest_verify does that. *out malloc'd. */
int stk_attest_evidence_parse(const char *json, size_t len,
    struct stk_attest_evidence **out, struct stk_error *err);
/* Serialise to JSON, *out malloc'd, NUL-terminated, with a final newline. */
int stk_attest_evidence_json(const struct stk_attest_evidence *ev,
    char **out, struct stk_error *err);

/* Hex nonce (lower or upper case) to bytes; STK_E_ARG unless it is
 * STK_ATTEST_NONCE_MIN..STK_ATTEST_NONCE_MAX bytes of even-length hex. */
int stk_attest_nonce_parse(const char *hex, unsigned char *out, size_t *len,
    struct stk_error *err);

/* What the auditor checks against. */
struct stk_attest_expect {
	X509_STORE *roots;          /* trusted EK roots (the manufacturer's) */
	const unsigned char *nonce; /* the auditor's fresh nonce */
	size_t nonce_len;
	EVP_PKEY *key;              /* optional: the key the evidence must be about */
};

/* What a passing check established, for the report. */
struct stk_attest_result {
	char ak_name[2 * 34 + 1];   /* hex of the AK's Name (nameAlg || digest) */
	char key_name[2 * 34 + 1];  /* hex of the attested key's Name */
	char ek_subject[256];
	char ek_issuer[256];
	char key_type[16];          /* "rsa2048", "p256", ... */
	unsigned long long clock;   /* TPM clock at certify (ms) */
};

/* The auditor's check of every SPEC.md point: EK chain to a trusted root,
 * AK restricted signing key in shape, AK signature over certInfo, certInfo
 * is TPM_GENERATED / ATTEST_CERTIFY of Name(pubArea) with extraData = nonce,
 * pubArea fixedTPM|fixedParent|sensitiveDataOrigin|sign, the key the one
 * expected. 0 if all hold; STK_E_ATTEST with the first failing reason
 * otherwise. res may be NULL. */
int stk_attest_verify(const struct stk_attest_evidence *ev,
    const struct stk_attest_expect *exp, struct stk_attest_result *res,
    struct stk_error *err);

/* Load a PEM file of one or more root certificates into a new store. */
int stk_attest_roots_load(const char *path, X509_STORE **out,
    struct stk_error *err);

/* TPM2_MakeCredential in software (OpenSSL): wrap secret for the AK of the
 * evidence, to the RSA EK of its certificate, in tpm2-tools' file format
 * (tpm2_makecredential -o: 0xBADCC0DE, version 1, TPM2B_ID_OBJECT,
 * TPM2B_ENCRYPTED_SECRET). *out malloc'd. Only an RSA EK is supported
 * (STK_E_UNSUPPORTED otherwise). */
int stk_attest_make_credential(const struct stk_attest_evidence *ev,
    const unsigned char *secret, size_t secret_len, unsigned char **out,
    size_t *outlen, struct stk_error *err);

/* Split a tpm2-tools credential file into its two TPM2Bs (marshalled,
 * each with its size prefix). Refuses bad magic/version, short or padded
 * files with STK_E_ARG. */
int stk_attest_credfile_parse(const unsigned char *buf, size_t len,
    struct stk_blob *id_object, struct stk_blob *enc_secret,
    struct stk_error *err);

/* Name of a marshalled TPMT_PUBLIC: nameAlg || H(TPMT_PUBLIC), as hex. */
int stk_attest_name_hex(const unsigned char *tpmt_public, size_t len,
    char *hex, size_t hexlen, struct stk_error *err);

/* ---- TPM side (tpm backend only; STK_E_UNSUPPORTED on other keys) ---- */

/* 1 if key attestation can be offered for this key (a TPM key), else 0. */
int stk_key_attestation_available(const struct stk_key *key);

/* Read the EK certificate (RSA, else ECC) and the EK chain from NV, make
 * the AK (restricted signing primary in the endorsement hierarchy, same
 * algorithm as the EK: re-derived on every use, so nothing is stored),
 * TPM2_Certify the key with it over the nonce, and fill *out. */
int stk_tpm_attest(struct stk_key *key, const unsigned char *nonce,
    size_t nonce_len, struct stk_attest_evidence **out, struct stk_error *err);

/* TPM2_ActivateCredential with the AK and the EK (policy session,
 * PolicySecret on the endorsement hierarchy) on a tpm2-tools credential
 * file; the recovered secret into secret[STK_ATTEST_SECRET_MAX]. */
int stk_tpm_activate_credential(struct stk_key *key, const unsigned char *cred,
    size_t cred_len, unsigned char *secret, size_t *secret_len,
    struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
