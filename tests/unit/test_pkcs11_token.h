/* A throw-away SoftHSM token for the pkcs11 unit tests (test_pkcs11_token.c). */
#ifndef STK_TEST_PKCS11_TOKEN_H
#define STK_TEST_PKCS11_TOKEN_H

#include <stddef.h>
#include <p11-kit/pkcs11.h>

int p11t_token_setup(const char *label, char **dir);
void p11t_token_cleanup(char *dir);
CK_FUNCTION_LIST *p11t_fl(void);
void p11t_fl_release(void);
int p11t_slot(CK_FUNCTION_LIST *fl, const char *label, CK_SLOT_ID *slot);
int p11t_pin(char *buf, size_t len);

#endif
