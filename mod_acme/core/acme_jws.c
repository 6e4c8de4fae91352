/* acme_jws.c: being written */
