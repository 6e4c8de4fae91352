/* acmectl_import.h: `acmectl import certbot`: another client's certificates
 * and account taken into the store, so that the server serves and renews
 * them without a new order or a new account. */
#ifndef ACMECTL_IMPORT_H
#define ACMECTL_IMPORT_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "acme_store.h"

#define ACMECTL_CERTBOT_DIR "/etc/letsencrypt"

/* Imports certbot's lineages under dir whose certificate covers one of
 * domains (the config's ManagedDomain names: apr_array_header_t * each),
 * and their ACME accounts. Prints what it imported and skipped, and why.
 * Returns 0 when nothing failed, 1 otherwise. */
int acmectl_import_certbot(acme_store_t *store, const apr_array_header_t *domains,
                           const char *dir, apr_pool_t *p);

#endif /* ACMECTL_IMPORT_H */
