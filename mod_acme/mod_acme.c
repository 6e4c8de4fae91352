/* mod_acme.c: the module's tables and hook registration. The work is done
 * in the other mod_acme_*.c files and in the core (core/acme_*.c). */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "acme_util.h"
#include "mod_acme.h"
#include "mod_acme_config.h"

static void acme_register_hooks(apr_pool_t *p)
{
    (void)p;
}

AP_DECLARE_MODULE(acme) = {
    STANDARD20_MODULE_STUFF,
    NULL,                     /* per-directory config */
    NULL,                     /* merge per-directory */
    acme_config_create_srv,   /* per-server config */
    acme_config_merge_srv,    /* merge per-server */
    acme_cmds,                /* directives */
    acme_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
