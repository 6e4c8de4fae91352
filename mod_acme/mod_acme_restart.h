/* mod_acme_restart.h: the parent's side of activation (root): staged
 * results activated at post_config, and the thread that decides the
 * graceful restart which brings them up. */
#ifndef MOD_ACME_RESTART_H
#define MOD_ACME_RESTART_H

#include <httpd.h>

#include "acme_restart.h"
#include "mod_acme_config.h"

/* Parent, at post_config: activates staged results. Returns how many. */
int acme_mod_activate(acme_global_t *g, server_rec *s, apr_pool_t *ptemp);
/* Parent, at post_config: starts the restart thread (or leaves the check to
 * httpd's monitor hook when it cannot). */
apr_status_t acme_mod_restart_start(acme_global_t *g, server_rec *s, apr_pool_t *p);
void acme_mod_restart_register_hooks(void);

/* The renewal child tells the parent's thread what it does (a datagram on
 * the socket pair made before the fork). Never blocks. */
void acme_mod_restart_tell(acme_restart_event_t event, int first, const char *domain);
/* Whether this generation comes from the module's own activation restart
 * (no new configuration): read once, at the configuration, and cleared. */
int acme_mod_restart_was_self(server_rec *s);

#endif /* MOD_ACME_RESTART_H */
