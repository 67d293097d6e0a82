package org.loratransplant.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The regulariser, the cubic schedule and pruning against values worked out by hand. */
class AdaLoraMathTest {

  @Test
  void orthogonalityRegulariserMatchesHandComputation() {
    try (NDManager m = NDManager.newBaseManager()) {
      // Q = A (r=2, in=3) = [[1,0,0],[0,2,0]]: Q Q^T = diag(1, 4), minus I = diag(0, 3): norm 3.
      // aT is Q^T (3, 2).
      NDArray aT = m.create(new float[] {1, 0, 0, 2, 0, 0}, new Shape(3, 2));
      // P = B (out=2, r=2) = [[1,1],[0,1]]: P^T P = [[1,1],[1,2]], minus I = [[0,1],[1,1]]:
      // norm sqrt(3). bT is P^T (2, 2) = [[1,0],[1,1]].
      NDArray bT = m.create(new float[] {1, 0, 1, 1}, new Shape(2, 2));
      float got = Orthogonality.regulariser(List.of(aT), List.of(bT)).getFloat();
      assertEquals((3 + Math.sqrt(3)) / 2, got, 1e-6);
      // orthonormal factors cost nothing
      NDArray eye = m.eye(2);
      assertEquals(0f, Orthogonality.regulariser(List.of(eye), List.of(eye)).getFloat(), 2e-6);
    }
  }

  @Test
  void cubicScheduleMatchesHandComputation() {
    // 4 modules, init_r 12 -> target_r 4: budget 48 -> 16; tinit 10, tfinal 20, total 110:
    // budgeting over steps 11..90 with span 80.
    BudgetSchedule s = new AdaLoraConfig(12, 4, 8, 0, java.util.Set.of(
        org.loratransplant.model.Projection.Q_PROJ), List.of(), 10, 20, 5, 0.85, 0.85, 0.5, 110,
        "").schedule(4);
    assertEquals(new BudgetSchedule.Budget(48, false), s.at(0));
    assertEquals(new BudgetSchedule.Budget(48, false), s.at(10));
    // step 30: (1 - 20/80)^3 = 0.421875; 32 * 0.421875 + 16 = 29.5 -> 29; 30 % 5 == 0
    assertEquals(new BudgetSchedule.Budget(29, true), s.at(30));
    // step 31: (1 - 21/80)^3 = 0.400... * 32 = 12.83... + 16 = 28.83 -> 28; not a masking step
    assertEquals(new BudgetSchedule.Budget(28, false), s.at(31));
    // step 50: half way, 0.125 * 32 + 16 = 20
    assertEquals(new BudgetSchedule.Budget(20, true), s.at(50));
    assertEquals(new BudgetSchedule.Budget(16, true), s.at(90));
    assertEquals(new BudgetSchedule.Budget(16, true), s.at(91));
    assertThrows(IllegalArgumentException.class, () -> new BudgetSchedule(48, 16, 50, 60, 110, 1));
  }

  @Test
  void emaSensitivityAndUncertaintyMatchHandComputation() {
    RankAllocator<String> ra = new RankAllocator<>(0.85, 0.85);
    // one module, r=1, in=1, out=1: w*g = A: 2*3=6, B: 1*(-1)=-1 -> 1, E: 0.5*4=2
    RankAllocator.Module mod = new RankAllocator.Module(1, 1, 1, new float[] {2},
        new float[] {3}, new float[] {1}, new float[] {-1}, new float[] {0.5f}, new float[] {4});
    ra.update(Map.of("m", mod));
    // Ibar = 0.15 I; U = 0.15 |I - 0.15 I| = 0.15 * 0.85 I; score = 0.15^2 * 0.85 * I^2
    double c = 0.15 * 0.15 * 0.85;
    double want = c * 4 + c * 36 + c * 1; // E + mean row of A + mean column of B
    assertEquals(want, ra.tripletImportance(Map.of("m", mod)).get("m")[0], 1e-9);
    ra.update(Map.of("m", mod));
    // second step, E: Ibar = 0.85*0.3 + 0.15*2 = 0.555; U = 0.85*0.255 + 0.15*|2-0.555|
    double ibar = 0.85 * 0.3 + 0.15 * 2;
    double u = 0.85 * (0.15 * 0.85 * 2) + 0.15 * Math.abs(2 - ibar);
    double ibarA = 0.85 * 0.9 + 0.15 * 6;
    double uA = 0.85 * (0.15 * 0.85 * 6) + 0.15 * Math.abs(6 - ibarA);
    double ibarB = 0.85 * 0.15 + 0.15 * 1;
    double uB = 0.85 * (0.15 * 0.85 * 1) + 0.15 * Math.abs(1 - ibarB);
    assertEquals(ibar * u + ibarA * uA + ibarB * uB,
        ra.tripletImportance(Map.of("m", mod)).get("m")[0], 1e-9);
  }

  @Test
  void pruningKeepsTheTopBudgetTripletsByImportance() {
    RankAllocator<String> ra = new RankAllocator<>(0.5, 0.5);
    // two modules, r = 3, in = out = 1; only E carries gradient, so importance ~ (e * g)^2
    // module x: |e g| = 1, 5, 3; module y: 4, 2, 6 -> order 1 < 2 < 3 < 4 < 5 < 6
    Map<String, RankAllocator.Module> mods = new LinkedHashMap<>();
    mods.put("x", module(new float[] {1, 5, 3}));
    mods.put("y", module(new float[] {4, 2, 6}));
    ra.update(mods);
    Map<String, boolean[]> keep = ra.maskToBudget(mods, 3); // keep 4, 5, 6
    assertArrayEquals(new boolean[] {false, true, false}, keep.get("x"));
    assertArrayEquals(new boolean[] {true, false, true}, keep.get("y"));
    assertArrayEquals(new float[] {0, 5, 0}, mods.get("x").e());
    assertArrayEquals(new float[] {4, 0, 6}, mods.get("y").e());
    // a budget of every triplet masks nothing
    Map<String, boolean[]> all = ra.maskToBudget(mods, 6);
    assertArrayEquals(new boolean[] {true, true, true}, all.get("x"));
    assertArrayEquals(new boolean[] {true, true, true}, all.get("y"));
  }

  private static RankAllocator.Module module(float[] e) {
    return new RankAllocator.Module(3, 1, 1, new float[3], new float[3], new float[3],
        new float[3], e, new float[] {1, 1, 1});
  }
}
