// A SCIM 2.0 app built on SCIMMY and scimmy-routers, packages maintained by others,
// keeping users and groups in memory. Roster's interop tests run the SCIM client
// against it. It prints "listening <port>" once it accepts requests on loopback.
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.env.SCIM_TOKEN;
const stores = {User: new Map(), Group: new Map()};
let sequence = 0;

// resourceHandlers stores resources of one type. Uniqueness of userName (and of a
// group's displayName) ignores letter case, as RFC 7643 says; SCIMMY's filter does not,
// and that is left as it is: it is one of the quirks the client must live with.
function resourceHandlers(type, uniqueAttribute) {
    const store = stores[type];
    const notFound = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
    return {
        egress: (resource) => {
            if (resource.id) {
                const found = store.get(resource.id);
                if (!found) throw notFound(resource.id);
                return found;
            }
            const all = [...store.values()];
            return resource.filter ? resource.filter.match(all) : all;
        },
        ingress: (resource, instance) => {
            const data = JSON.parse(JSON.stringify(instance));
            const unique = String(data[uniqueAttribute] ?? "").toLowerCase();
            for (const [id, existing] of store) {
                if (id !== resource.id && String(existing[uniqueAttribute]).toLowerCase() === unique)
                    throw new SCIMMY.Types.Error(409, "uniqueness", `${uniqueAttribute} ${data[uniqueAttribute]} is taken`);
            }
            if (resource.id && !store.has(resource.id)) throw notFound(resource.id);
            const id = resource.id ?? String(++sequence);
            const now = new Date();
            const created = store.get(id)?.meta?.created ?? now;
            const stored = {...data, id, meta: {created, lastModified: now}};
            store.set(id, stored);
            return stored;
        },
        degress: (resource) => {
            if (!store.delete(resource.id)) throw notFound(resource.id);
            if (type === "User") {
                for (const group of stores.Group.values())
                    group.members = (group.members ?? []).filter((m) => m.value !== resource.id);
            }
        },
    };
}

SCIMMY.Config.set({patch: true, filter: {supported: true, maxResults: 200}, sort: false, bulk: false});
SCIMMY.Resources.declare(SCIMMY.Resources.User, resourceHandlers("User", "userName"));
SCIMMY.Resources.declare(SCIMMY.Resources.Group, resourceHandlers("Group", "displayName"));

const app = express();
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "http://localhost/docs",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization failed");
        return "roster";
    },
}));
const server = app.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
