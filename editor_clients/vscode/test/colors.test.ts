import { test } from "node:test";
import assert from "node:assert/strict";
import { colorFor, colorIndexFor, PALETTE, withAlpha } from "../src/core/colors";

test("colour index matches the relay's sha256 rule (docs §10)", () => {
  assert.equal(colorIndexFor("alice"), 1);
  assert.equal(colorIndexFor("bob"), 0);
  assert.equal(colorIndexFor("carol"), 11);
});

test("one stable colour per person", () => {
  assert.equal(colorFor(1), "#3cb44b");
  assert.equal(colorFor(13), PALETTE[1]);
  assert.equal(colorFor(-1), PALETTE[11]);
  assert.equal(colorFor(undefined, "alice"), colorFor(1));
  assert.equal(colorFor(null, "u_x"), colorFor(null, "u_x"));
  assert.equal(colorFor(null), PALETTE[0]);
});

test("selection tint adds an alpha byte", () => {
  assert.equal(withAlpha("#e6194b", 0.25), "#e6194b40");
  assert.equal(withAlpha("#e6194b", 2), "#e6194bff");
});
