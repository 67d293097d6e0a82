package org.loratransplant.pipeline.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.junit.jupiter.api.Test;

class NearDuplicatesTest {

  @Test
  void aQueryIsDroppedOnlyForAKeptEarlierNearDuplicate() {
    // 1~2, 2~3, 1~4: 2 is dropped (dup of 1); 3 stays (its only neighbour 2 was dropped);
    // 4 is dropped (dup of 1); 5~3 -> 5 dropped as dup of kept 3.
    List<Row> edges = List.of(RowFactory.create(1L, 2L, 0.9), RowFactory.create(2L, 3L, 0.8),
        RowFactory.create(1L, 4L, 0.75), RowFactory.create(3L, 5L, 0.71));
    Map<Long, Row> dropped = NearDuplicates.decide(edges);
    assertEquals(List.of(2L, 4L, 5L), List.copyOf(dropped.keySet()));
    assertEquals(1L, dropped.get(2L).getLong(1));
    assertEquals(3L, dropped.get(5L).getLong(1));
    assertEquals(0.71, dropped.get(5L).getDouble(2));
  }
}
