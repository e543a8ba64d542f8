// The catalog the worker prices against: the same list the origin builds its `Catalog` from.
export const PRODUCTS = [
  { sku: "basic", name: "Basic licence", basePrice: 1000 },
  { sku: "pro", name: "Pro licence", basePrice: 5000, tiers: ["gold", "platinum"] },
  {
    sku: "seats",
    name: "Seats",
    pricing: "graduated",
    bands: [
      { upTo: 10, unitPrice: 100 },
      { upTo: null, unitPrice: 80 },
    ],
  },
];
