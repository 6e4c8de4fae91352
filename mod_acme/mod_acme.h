/* mod_acme.h: what the glue files of mod_acme share among themselves. */
#ifndef MOD_ACME_H
#define MOD_ACME_H

#include <httpd.h>
#include <http_config.h>

extern module AP_MODULE_DECLARE_DATA acme_module;

#endif /* MOD_ACME_H */
