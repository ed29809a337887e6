/* The compiled-in site stores and how a connection string picks one. */
#include <string.h>
#include "db.h"

static const struct site_db_vtable *const site_db_stores[] = {
	&site_db_sqlite,
#ifdef STK_WITH_PG
	&site_db_pg,
#endif
	NULL
};

static const struct site_db_vtable *
site_db_named(const char *name)
{
	size_t i;

	for (i = 0; site_db_stores[i] != NULL; i++)
		if (strcmp(site_db_stores[i]->name, name) == 0)
			return site_db_stores[i];
	return NULL;
}

const struct site_db_vtable *
site_db_find(const char *conninfo)
{
	if (conninfo == NULL || *conninfo == '\0' || strcmp(conninfo, "sqlite") == 0)
		return &site_db_sqlite;
	if (strncmp(conninfo, "postgresql://", 13) == 0 ||
	    strncmp(conninfo, "postgres://", 11) == 0 || strchr(conninfo, '=') != NULL)
		return site_db_named("postgresql");
	return NULL;
}
