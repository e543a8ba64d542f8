// The pricing preview. All arithmetic happens in the wasm module; this file only reads inputs
// and renders what the engine returns. It loads the pricing-only module: a third of the full
// engine's download, and all a pricing page needs.
import init, { Catalog, AllyError, verifyQuote } from "../pkg/pricing/web.js";

const PRODUCTS = [
  { sku: "basic", name: "Basic licence", basePrice: 1000 },
  { sku: "pro", name: "Pro licence", basePrice: 5000, tiers: ["gold", "platinum"] },
  { sku: "enterprise", name: "Enterprise licence", basePrice: 25000, tiers: ["platinum"] },
  { sku: "seats", name: "Extra seats", pricing: "graduated", bands: [{ upTo: 10, unitPrice: 120 }, { upTo: 50, unitPrice: 100 }, { upTo: null, unitPrice: 85 }] },
  { sku: "storage", name: "Storage (100 GB blocks)", pricing: "volume", bands: [{ upTo: 5, unitPrice: 400 }, { upTo: 20, unitPrice: 350 }, { upTo: null, unitPrice: 300 }] },
  // A flat fee per band: the first 5 agents are covered by the desk's fee, billed even for none.
  { sku: "support", name: "Support desk (agents)", pricing: "graduated", bands: [{ upTo: 5, unitPrice: 0, flatFee: 2000 }, { upTo: null, unitPrice: 150, flatFee: 500 }] },
  // Package pricing: a price per started block, after free units.
  { sku: "api", name: "API calls", pricing: "package", packageSize: 1000, packagePrice: 250, freeUnits: 1000 },
];
const BY_SKU = new Map(PRODUCTS.map((p) => [p.sku, p]));
const START = { basic: 2, seats: 12, storage: 6 };

await init();
const catalog = new Catalog(PRODUCTS);
const $ = (selector) => document.querySelector(selector);
const credits = new Intl.NumberFormat("en-US");

function describeModel(product) {
  if (product.pricing === "package") {
    const free = product.freeUnits ? `, the first ${credits.format(product.freeUnits)} free` : "";
    return `package: ${credits.format(product.packagePrice)} per started ${credits.format(product.packageSize)}${free}`;
  }
  if (!product.bands) return `${credits.format(product.basePrice)} credits each`;
  const bands = product.bands.map((b) => `${b.upTo ?? "∞"}: ${b.unitPrice}${b.flatFee ? ` + ${credits.format(b.flatFee)} flat` : ""}`).join(", ");
  return `${product.pricing} (${bands})`;
}

function renderProducts() {
  const body = $("#products tbody");
  for (const product of PRODUCTS) {
    const row = body.insertRow();
    row.insertCell().textContent = product.name;
    row.insertCell().textContent = describeModel(product);
    row.insertCell().textContent = product.tiers ? product.tiers.join(", ") : "every tier";
    const cell = row.insertCell();
    cell.className = "num";
    const input = Object.assign(document.createElement("input"), { type: "number", min: "0", step: "1", value: String(START[product.sku] ?? ""), name: product.sku });
    input.dataset.sku = product.sku;
    input.addEventListener("input", update);
    cell.append(input);
  }
}

function request() {
  // An empty field is no line; 0 is a line of 0 units (a flat first band still bills its fee).
  const lines = [...document.querySelectorAll("#products input")]
    .filter((input) => input.value !== "")
    .map((input) => ({ sku: input.dataset.sku, quantity: Number(input.value) }));
  return { tier: $("#tier").value, rounding: $("#rounding").value, lines };
}

function bandText(line) {
  if (line.pricing === "perUnit") return "—";
  if (line.pricing === "package") {
    const size = credits.format(BY_SKU.get(line.sku).packageSize);
    const free = line.freeUnits ? ` (${credits.format(line.freeUnits)} free)` : "";
    return `${line.packages} × ${size}${free}`;
  }
  return line.bands.map((b) => `${b.quantity} × ${b.unitPrice}${b.flatFee ? ` + ${credits.format(b.flatFee)}` : ""}`).join(" + ");
}

function update() {
  const body = $("#quote tbody");
  body.replaceChildren();
  const error = $("#error");
  error.hidden = true;
  let quote;
  try {
    quote = catalog.quote(request());
  } catch (e) {
    error.textContent = e instanceof AllyError ? `${e.code}: ${e.message}` : String(e);
    error.hidden = false;
    for (const id of ["subtotal", "discount", "total", "money", "fingerprint", "verified"]) $(`#${id}`).textContent = "—";
    document.body.dataset.state = "error";
    return;
  }
  for (const line of quote.lines) {
    const row = body.insertRow();
    row.insertCell().textContent = line.name;
    const cells = [line.quantity, bandText(line), line.unitPrice, line.subtotal, `−${credits.format(line.discount)}`, line.total];
    cells.forEach((value, i) => {
      const cell = row.insertCell();
      cell.textContent = typeof value === "number" ? credits.format(value) : value;
      if (i !== 1) cell.className = "num";
    });
  }
  $("#subtotal").textContent = credits.format(quote.subtotal);
  $("#discount").textContent = `−${credits.format(quote.discount)}`;
  $("#total").textContent = credits.format(quote.total);
  $("#money").textContent = `${quote.totalMoney} ${quote.currency}`;
  $("#fingerprint").textContent = quote.fingerprint;
  // What an edge function would do with a quote posted from this page.
  const verdict = verifyQuote(JSON.parse(JSON.stringify(quote)), catalog);
  $("#verified").textContent = verdict.valid ? "genuine" : `mismatch at ${verdict.mismatches.join(", ")}`;
  document.body.dataset.state = "ready";
}

renderProducts();
$("#tier").addEventListener("change", update);
$("#rounding").addEventListener("change", update);
update();
