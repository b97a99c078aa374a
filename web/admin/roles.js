// Who is signed in (/api/me) and what its roles let it see.



export const me = { account: "", roles: [], approval: "second_admin" };
export const has = (...roles) => roles.some((r) => me.roles.includes(r));
export const mayApprove = () => has(me.approval === "police_liaison" ? "police_liaison" : "admin");

// Elements marked data-roles show only to accounts with one of those roles.
export function showByRole() {
  for (const el of document.querySelectorAll("[data-roles]")) {
    const wanted = el.dataset.roles.split(" ");
    if (el.id === "emergency-form" || el.id === "waiting") continue; // shown by their owners
    el.hidden = !has(...wanted);
  }
}
