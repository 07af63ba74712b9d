// convscope atlas: the few things a static page cannot do without a script.
// Layer page: order the grid by similarity or by channel number, hide dead channels.
// Channel page: the arrow keys go to the previous and next channel of the layer.
document.addEventListener("DOMContentLoaded", () => {
  const grid = document.getElementById("grid");
  const order = document.getElementById("order");
  if (grid && order) {
    order.addEventListener("change", () => {
      const key = order.value === "channel" ? "channel" : "rank";
      const cells = [...grid.children].sort((a, b) => Number(a.dataset[key]) - Number(b.dataset[key]));
      grid.append(...cells);
    });
  }
  const hide = document.getElementById("hide-dead");
  if (grid && hide) hide.addEventListener("change", () => grid.classList.toggle("hide-dead", hide.checked));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.altKey || event.ctrlKey || event.metaKey) return;
    const rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
    const link = rel && document.querySelector(`a[rel=${rel}]`);
    if (link) location.href = link.href;
  });
});
