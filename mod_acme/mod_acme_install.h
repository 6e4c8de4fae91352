/* mod_acme_install.h: ManagedInstallCmd, the root parent's hand-off of a
 * newly activated certificate to another daemon (postfix, dovecot ...). */
#ifndef MOD_ACME_INSTALL_H
#define MOD_ACME_INSTALL_H

#include <httpd.h>

#include "mod_acme_config.h"

/* domains/<d>/install.json: how the install program ran for the
 * certificate that meta.json's "staged" names (ACME_IK_ members). */
#define ACME_INSTALL_JSON "install.json"
#define ACME_IK_STAGED "staged"
#define ACME_IK_TIME "time"
#define ACME_IK_OK "ok"
#define ACME_IK_DETAIL "detail"
#define ACME_IK_RUNNING "running"  /* started at "time", not finished yet */

#define ACME_INSTALL_TIMEOUT apr_time_from_sec(60)

/* Parent, at post_config after the activation: starts the install program
 * of each domain whose active certificate it has not been run for, in a
 * process of its own, so that neither this configuration pass nor serving
 * waits for it. */
void acme_install_start(acme_global_t *g, server_rec *s, apr_pool_t *ptemp);

#endif /* MOD_ACME_INSTALL_H */
