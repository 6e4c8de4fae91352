/* mod_acme_sched.h: the renewal child's scheduler (unprivileged): the
 * child that holds mod_watchdog's singleton runs the renewal jobs, one
 * thread each, and their notifications. */
#ifndef MOD_ACME_SCHED_H
#define MOD_ACME_SCHED_H

#include <httpd.h>

#include "mod_acme_config.h"

/* At post_config: registers the scheduler with mod_watchdog for this
 * generation. APR_ENOTIMPL without mod_watchdog. */
apr_status_t acme_mod_sched_start(acme_global_t *g, server_rec *s, apr_pool_t *p);
void acme_mod_sched_register_hooks(void);

#endif /* MOD_ACME_SCHED_H */
