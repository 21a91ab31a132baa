"""/api/quota: the account's quota of SMS (ACCOUNTS.md "Quotas")."""

from __future__ import annotations

from smsnodes_hub.api.openapi.builders import Json, curl, ok, operation

TAG = {"name": "Quota", "description": "Extension: how many SMS the account may still send "
       "today and this month."}
QUOTA = {
    "daily": {"limit": 1000, "used": 127, "remaining": 873,
              "resetsAt": "2026-12-04T00:00:00.000Z"},
    "monthly": {"limit": 20000, "used": 4312, "remaining": 15688,
                "resetsAt": "2027-01-01T00:00:00.000Z"},
}


def paths(base: str) -> Json:
    return {"/api/quota": {"get": operation(
        "Quota", "getQuota", "Read the account's quota",
        "Extension. The account's daily and monthly limits, what is used of each and when each "
        "resets (midnight UTC; the first day of the month), `null` for a period without a "
        "limit. An SMS is one recipient times the message's segments; a recipient that ends "
        "cancelled or expired without having been sent gives its SMS back. Set with "
        "`smsnodes-hub account quota NAME --daily N --monthly N`. A send that would pass a "
        "quota is `429 {\"error\": \"Quota exceeded\"}` and stores nothing.",
        responses={"200": ok("The quota.", "Quota",
                             ("both", "Daily and monthly limits", QUOTA),
                             ("daily", "A daily limit only", {**QUOTA, "monthly": None}),
                             ("none", "No quota", {"daily": None, "monthly": None}))},
        curl=curl(f"{base}/api/quota", login="-u 'acme:account password'"),
    )}}
