-- Aozora Group ERP sample database.
--
-- Portable SQL: loads unchanged into SQLite (sqlite3 executescript) and PostgreSQL (psql -f).
-- Standard types only, explicit ids (no AUTOINCREMENT / SERIAL), ISO-8601 date strings.
-- Amounts are in the currency of the row: EUR (aozora-de), JPY (aozora-jp), USD (aozora-us).
-- The people, customers, products and amounts match the sample documents in
-- src/cristal/sample/documents/ (travel policies, Q3 reports, escalations).

DROP VIEW IF EXISTS pending_expenses;
DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS customers;
DROP TABLE IF EXISTS expenses;
DROP TABLE IF EXISTS employees;

CREATE TABLE employees (
    id          INTEGER      NOT NULL PRIMARY KEY,
    org         VARCHAR(64)  NOT NULL,
    email       VARCHAR(255) NOT NULL,
    name        VARCHAR(255) NOT NULL,
    department  VARCHAR(64)  NOT NULL,
    UNIQUE (org, email)
);

CREATE TABLE expenses (
    id              INTEGER       NOT NULL PRIMARY KEY,
    org             VARCHAR(64)   NOT NULL,
    employee_email  VARCHAR(255)  NOT NULL,
    date            DATE          NOT NULL,
    category        VARCHAR(32)   NOT NULL,
    amount          NUMERIC(12,2) NOT NULL CHECK (amount > 0),
    currency        CHAR(3)       NOT NULL CHECK (currency IN ('EUR', 'JPY', 'USD')),
    status          VARCHAR(16)   NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    description     VARCHAR(500)  NOT NULL,
    FOREIGN KEY (org, employee_email) REFERENCES employees (org, email)
);

CREATE TABLE customers (
    id       INTEGER      NOT NULL PRIMARY KEY,
    org      VARCHAR(64)  NOT NULL,
    name     VARCHAR(255) NOT NULL,
    country  CHAR(2)      NOT NULL,
    city     VARCHAR(128) NOT NULL,
    address  VARCHAR(255) NOT NULL,
    segment  VARCHAR(32)  NOT NULL
);

CREATE TABLE orders (
    id           INTEGER       NOT NULL PRIMARY KEY,
    customer_id  INTEGER       NOT NULL REFERENCES customers (id),
    date         DATE          NOT NULL,
    product      VARCHAR(64)   NOT NULL,
    quantity     INTEGER       NOT NULL CHECK (quantity > 0),
    amount       NUMERIC(14,2) NOT NULL,
    currency     CHAR(3)       NOT NULL CHECK (currency IN ('EUR', 'JPY', 'USD'))
);

CREATE INDEX idx_expenses_status ON expenses (org, status);
CREATE INDEX idx_orders_customer ON orders (customer_id);

-- Employees: everyone who signs in to Cristal (see company.py) plus colleagues named in the documents.
INSERT INTO employees (id, org, email, name, department) VALUES
    (1,  'aozora-jp', 'yuki.tanaka@aozora.example',         '田中由紀',         'management'),
    (2,  'aozora-jp', 'kenji.sato@aozora.example',          '佐藤健二',         'finance'),
    (3,  'aozora-jp', 'haruka.ito@aozora.example',          '伊藤遥',           'engineering'),
    (4,  'aozora-jp', 'daiki.kobayashi@aozora.example',     '小林大輝',         'sales'),
    (5,  'aozora-jp', 'sakura.yamamoto@aozora.example',     '山本さくら',       'product'),
    (6,  'aozora-jp', 'sho.nakamura@aozora.example',        '中村翔',           'engineering'),
    (7,  'aozora-jp', 'mari.watanabe@aozora.example',       '渡辺真理',         'hr'),
    (8,  'aozora-de', 'anna.schmidt@aozora-de.example',     'Anna Schmidt',     'management'),
    (9,  'aozora-de', 'lukas.weber@aozora-de.example',      'Lukas Weber',      'finance'),
    (10, 'aozora-de', 'mia.fischer@aozora-de.example',      'Mia Fischer',      'engineering'),
    (11, 'aozora-de', 'jonas.becker@aozora-de.example',     'Jonas Becker',     'sales'),
    (12, 'aozora-de', 'felix.wagner@aozora-de.example',     'Felix Wagner',     'customer_service'),
    (13, 'aozora-de', 'sophie.hoffmann@aozora-de.example',  'Sophie Hoffmann',  'customer_service'),
    (14, 'aozora-de', 'tim.schulz@aozora-de.example',       'Tim Schulz',       'engineering'),
    (15, 'aozora-us', 'emily.johnson@aozora-us.example',    'Emily Johnson',    'management'),
    (16, 'aozora-us', 'michael.brown@aozora-us.example',    'Michael Brown',    'finance');

-- Expenses. Policies: aozora-de Reisekostenrichtlinie 2025 (+ Munich hotel cap raised to 180 EUR on 2025-09-15),
-- aozora-jp 出張旅費規程 (2025-04-01), aozora-us Travel and Expense Policy FIN-02.
INSERT INTO expenses (id, org, employee_email, date, category, amount, currency, status, description) VALUES
    -- aozora-de (EUR)
    (1,  'aozora-de', 'lukas.weber@aozora-de.example',     '2025-07-08', 'travel',               139.90, 'EUR', 'approved', 'Bahnfahrt Düsseldorf–München 2. Klasse, Besuch Vertriebsbüro'),
    (2,  'aozora-de', 'jonas.becker@aozora-de.example',    '2025-07-17', 'hotel',                296.00, 'EUR', 'approved', 'Hotel München, 2 Nächte à 148 EUR, Kundentermine Bürowelt Süd'),
    (3,  'aozora-de', 'jonas.becker@aozora-de.example',    '2025-07-17', 'per_diem',              56.00, 'EUR', 'approved', 'Verpflegungsmehraufwand München 15.–17.07. (14 + 28 + 14 EUR, Hotel ohne Frühstück)'),
    (4,  'aozora-de', 'mia.fischer@aozora-de.example',     '2025-08-19', 'meals',                 38.50, 'EUR', 'approved', 'Verpflegung Bereitschaftsteam während des Kumo-Ausfalls'),
    (5,  'aozora-de', 'tim.schulz@aozora-de.example',      '2025-08-19', 'travel',                46.20, 'EUR', 'approved', 'Taxi zum Büro, nächtlicher Bereitschaftseinsatz Kumo-Ingest'),
    (6,  'aozora-de', 'anna.schmidt@aozora-de.example',    '2025-08-26', 'client_entertainment', 262.00, 'EUR', 'approved', 'Geschäftsessen mit der Stadt Krefeld nach dem Kumo-Ausfall, 4 Personen'),
    (7,  'aozora-de', 'jonas.becker@aozora-de.example',    '2025-09-09', 'hotel',                165.00, 'EUR', 'approved', 'Hotel München, 1 Nacht, Vorbereitung Fachmesse Gebäudetechnik'),
    (8,  'aozora-de', 'tim.schulz@aozora-de.example',      '2025-09-12', 'training',             137.00, 'EUR', 'approved', 'Prüfungsgebühr AWS Certified SysOps Administrator'),
    (9,  'aozora-de', 'jonas.becker@aozora-de.example',    '2025-09-26', 'hotel',                235.00, 'EUR', 'rejected', 'Hotel München, 1 Nacht während des Oktoberfests, ohne Reisegenehmigung und über der Obergrenze'),
    (10, 'aozora-de', 'jonas.becker@aozora-de.example',    '2025-09-24', 'hotel',                318.00, 'EUR', 'pending',  'Hotel Schwabinger Tor München, 2 Nächte à 159 EUR (Firmenkontingent)'),
    (11, 'aozora-de', 'lukas.weber@aozora-de.example',     '2025-09-30', 'software',             129.00, 'EUR', 'approved', 'Zusatzmodul Buchhaltungssoftware, Jahreslizenz'),
    (12, 'aozora-de', 'sophie.hoffmann@aozora-de.example', '2025-10-01', 'training',             490.00, 'EUR', 'pending',  'Seminar Reklamationsmanagement für Kundendienstmitarbeiter'),
    (13, 'aozora-de', 'felix.wagner@aozora-de.example',    '2025-10-06', 'mileage',               22.80, 'EUR', 'pending',  'Kilometerpauschale Neuss–Köln und zurück, 76 km à 0,30 EUR, Kundentermin Dr. Keller'),
    (14, 'aozora-de', 'jonas.becker@aozora-de.example',    '2025-10-10', 'hotel',                704.00, 'EUR', 'pending',  'Hotel München, 4 Nächte à 176 EUR, Fachmesse Gebäudetechnik 6.–9.10.'),
    (15, 'aozora-de', 'jonas.becker@aozora-de.example',    '2025-10-10', 'per_diem',              89.60, 'EUR', 'pending',  'Verpflegungsmehraufwand München 6.–10.10. (2 × 14 + 3 × 28 EUR, abzüglich 4 × 5,60 EUR Frühstück)'),
    (16, 'aozora-de', 'anna.schmidt@aozora-de.example',    '2025-10-13', 'travel',              1284.00, 'EUR', 'pending',  'Flug Düsseldorf–Tokio Economy, Konzernmeeting der Aozora Group'),
    (17, 'aozora-de', 'mia.fischer@aozora-de.example',     '2025-10-15', 'software',             779.00, 'EUR', 'rejected', 'IDE-Lizenzen für das Kumo-Team; bitte über den IT-Einkauf bestellen'),
    (18, 'aozora-de', 'jonas.becker@aozora-de.example',    '2025-10-17', 'client_entertainment', 231.00, 'EUR', 'pending',  'Bewirtung Bürowelt Süd, 3 Personen (77 EUR pro Person, über 70 EUR)'),
    -- aozora-jp (JPY)
    (19, 'aozora-jp', 'daiki.kobayashi@aozora.example',    '2025-07-10', 'travel',             29440,    'JPY', 'approved', '新幹線 東京–新大阪 往復（普通車指定席）、大阪市教育委員会訪問'),
    (20, 'aozora-jp', 'daiki.kobayashi@aozora.example',    '2025-07-10', 'hotel',              13800,    'JPY', 'approved', '大阪 宿泊1泊（朝食込み）'),
    (21, 'aozora-jp', 'daiki.kobayashi@aozora.example',    '2025-07-11', 'per_diem',            6000,    'JPY', 'approved', '日当 国内宿泊出張 2日分（3,000円×2）'),
    (22, 'aozora-jp', 'haruka.ito@aozora.example',         '2025-07-03', 'meals',               8400,    'JPY', 'approved', 'Kumo Insights 障害対応時の夕食（4名）'),
    (23, 'aozora-jp', 'kenji.sato@aozora.example',         '2025-08-05', 'travel',             16190,    'JPY', 'rejected', '東北新幹線 東京–仙台 グリーン車（従業員はグリーン車利用不可）'),
    (24, 'aozora-jp', 'haruka.ito@aozora.example',         '2025-08-25', 'travel',            238600,    'JPY', 'approved', '航空券 東京–フランクフルト往復（エコノミー）、Aozora Deutschland 訪問'),
    (25, 'aozora-jp', 'haruka.ito@aozora.example',         '2025-08-29', 'hotel',              87200,    'JPY', 'approved', 'デュッセルドルフ 宿泊3泊（1泊185ユーロ）'),
    (26, 'aozora-jp', 'haruka.ito@aozora.example',         '2025-08-30', 'per_diem',           36000,    'JPY', 'approved', '日当 海外出張6日分（6,000円×6）'),
    (27, 'aozora-jp', 'yuki.tanaka@aozora.example',        '2025-09-02', 'client_entertainment', 58000,  'JPY', 'approved', '会食 東都メディカルグループ（4名、1人14,500円）'),
    (28, 'aozora-jp', 'daiki.kobayashi@aozora.example',    '2025-09-30', 'travel',              7860,    'JPY', 'approved', 'タクシー代 サクラ保育 練馬区の園（検証用機材の運搬）'),
    (29, 'aozora-jp', 'daiki.kobayashi@aozora.example',    '2025-10-02', 'client_entertainment', 5400,   'JPY', 'pending',  'サクラ保育 お詫び訪問の手土産'),
    (30, 'aozora-jp', 'sho.nakamura@aozora.example',       '2025-10-09', 'training',          312000,    'JPY', 'pending',  'AWS re:Invent 2025 参加登録費（取締役承認が必要）'),
    (31, 'aozora-jp', 'mari.watanabe@aozora.example',      '2025-10-10', 'office_supplies',    18700,    'JPY', 'pending',  '新入社員研修用資料の印刷'),
    (32, 'aozora-jp', 'sakura.yamamoto@aozora.example',    '2025-10-14', 'travel',              2420,    'JPY', 'approved', 'つくばエクスプレス 秋葉原–つくば 往復、Sora Pro 2 量産試作の確認'),
    (33, 'aozora-jp', 'sakura.yamamoto@aozora.example',    '2025-10-14', 'per_diem',            2000,    'JPY', 'rejected', '日当 つくば日帰り出張（片道100km未満のため支給対象外）'),
    (34, 'aozora-jp', 'daiki.kobayashi@aozora.example',    '2025-10-16', 'hotel',              33000,    'JPY', 'pending',  '大阪 宿泊2泊（展示会期間、1泊16,500円、上限14,000円超過）'),
    (35, 'aozora-jp', 'kenji.sato@aozora.example',         '2025-10-17', 'software',           66000,    'JPY', 'pending',  '会計ソフト追加ライセンス（2ユーザー、年額）'),
    -- aozora-us (USD)
    (36, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-07-22', 'travel',               412.00, 'USD', 'approved', 'Flight SEA–SFO round trip, Harbor Co-Working meeting'),
    (37, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-07-24', 'hotel',                578.00, 'USD', 'approved', 'San Francisco hotel, 2 nights at $289'),
    (38, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-07-24', 'per_diem',             197.50, 'USD', 'approved', 'M&IE San Francisco, 3 days ($79 + 2 x 75 % travel days)'),
    (39, 'aozora-us', 'emily.johnson@aozora-us.example',   '2025-08-12', 'travel',              2140.00, 'USD', 'approved', 'Flight SEA–NRT premium economy, Aozora Group meeting in Tokyo'),
    (40, 'aozora-us', 'emily.johnson@aozora-us.example',   '2025-08-15', 'hotel',                507.00, 'USD', 'approved', 'Tokyo hotel, 3 nights at 25,000 JPY'),
    (41, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-09-09', 'client_entertainment', 468.00, 'USD', 'approved', 'Dinner with Summit Warehouse Club buyers, 5 people'),
    (42, 'aozora-us', 'emily.johnson@aozora-us.example',   '2025-09-26', 'meals',                960.00, 'USD', 'rejected', 'Team dinner, 12 people; team events are booked on the events cost center'),
    (43, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-10-03', 'mileage',               26.60, 'USD', 'pending',  'Mileage Seattle–Kirkland and back, 38 miles at $0.70, Lakeview School District escalation'),
    (44, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-10-07', 'hotel',                698.00, 'USD', 'pending',  'New York hotel, 2 nights at $349 (cap $325), Summit Warehouse Club holiday planning'),
    (45, 'aozora-us', 'emily.johnson@aozora-us.example',   '2025-10-08', 'client_entertainment', 164.00, 'USD', 'pending',  'Lunch with Lakeview School District facilities team, 4 people'),
    (46, 'aozora-us', 'michael.brown@aozora-us.example',   '2025-10-14', 'training',            1185.00, 'USD', 'pending',  'AHR Expo 2026 registration, 3 passes');

INSERT INTO customers (id, org, name, country, city, address, segment) VALUES
    (1,  'aozora-de', 'Stadt Krefeld',                     'DE', 'Krefeld',                 'Von-der-Leyen-Platz 1, 47798 Krefeld',                 'public_sector'),
    (2,  'aozora-de', 'Klinikum Rheinland',                'DE', 'Düsseldorf',              'Rheinallee 80, 40545 Düsseldorf',                      'healthcare'),
    (3,  'aozora-de', 'ElektroHaus Rhein-Ruhr GmbH',       'DE', 'Essen',                   'Kruppstraße 102, 45145 Essen',                         'retail'),
    (4,  'aozora-de', 'Bürowelt Süd GmbH',                 'DE', 'München',                 'Landsberger Straße 302, 80687 München',                'business'),
    (5,  'aozora-de', 'Hotelgruppe Alpenblick GmbH',       'DE', 'Garmisch-Partenkirchen',  'Bahnhofstraße 15, 82467 Garmisch-Partenkirchen',       'hospitality'),
    (6,  'aozora-de', 'Zahnarztpraxis Dr. Keller',         'DE', 'Köln',                    'Aachener Straße 210, 50931 Köln',                      'healthcare'),
    (7,  'aozora-jp', 'ハヤテ電機株式会社',                'JP', '東京都豊島区',            '東京都豊島区東池袋1-20-5',                             'retail'),
    (8,  'aozora-jp', '東都メディカルグループ',            'JP', '東京都文京区',            '東京都文京区本郷3-1-1',                                'healthcare'),
    (9,  'aozora-jp', '株式会社サクラ保育',                'JP', '東京都練馬区',            '東京都練馬区豊玉北5-18-10',                            'education'),
    (10, 'aozora-jp', 'ミドリ不動産株式会社',              'JP', '東京都千代田区',          '東京都千代田区丸の内1-9-2',                            'business'),
    (11, 'aozora-jp', '大阪市教育委員会',                  'JP', '大阪市北区',              '大阪府大阪市北区中之島1-3-20',                         'public_sector'),
    (12, 'aozora-us', 'Lakeview School District',          'US', 'Kirkland',                '1400 Lakeview Parkway, Kirkland, WA 98033',            'education'),
    (13, 'aozora-us', 'Summit Warehouse Club Inc.',        'US', 'Bellevue',                '11200 NE 8th Street, Bellevue, WA 98004',              'retail'),
    (14, 'aozora-us', 'Evergreen Health Partners',         'US', 'Portland',                '2200 NW Marshall Street, Portland, OR 97210',          'healthcare'),
    (15, 'aozora-us', 'Harbor Co-Working',                 'US', 'Oakland',                 '500 Broadway, Oakland, CA 94607',                      'business'),
    (16, 'aozora-us', 'Cascade Valley School District',    'US', 'Bend',                    '520 NW Wall Street, Bend, OR 97703',                   'education');

-- Orders. Q3 totals match the sales reports (e.g. ElektroHaus Rhein-Ruhr 612,000 EUR in Q3,
-- Lakeview School District 452,000 USD, Summit Warehouse Club 1,380,000 USD).
INSERT INTO orders (id, customer_id, date, product, quantity, amount, currency) VALUES
    (1,  6,  '2025-06-18', 'Sora Pro',                   3,      2697.00,    'EUR'),
    (2,  2,  '2025-06-27', 'Sora Pro',                  48,     41280.00,    'EUR'),
    (3,  2,  '2025-06-27', 'Kumo Node',                120,     14280.00,    'EUR'),
    (4,  3,  '2025-07-04', 'Sora S300',                900,    234000.00,    'EUR'),
    (5,  1,  '2025-07-28', 'Sora Pro',                 220,    171600.00,    'EUR'),
    (6,  1,  '2025-07-28', 'Kumo Cloud subscription', 1480,    261072.00,    'EUR'),
    (7,  3,  '2025-08-12', 'Sora S100',               1200,    180000.00,    'EUR'),
    (8,  4,  '2025-08-29', 'Sora S300',                800,    212000.00,    'EUR'),
    (9,  3,  '2025-09-05', 'HEPA-Filter H13',          600,     18600.00,    'EUR'),
    (10, 5,  '2025-09-15', 'Sora Pro',                 120,     96000.00,    'EUR'),
    (11, 5,  '2025-09-15', 'Kumo Node',                120,     14280.00,    'EUR'),
    (12, 3,  '2025-09-22', 'Sora Pro',                 260,    179400.00,    'EUR'),
    (13, 11, '2025-05-20', 'Sora Pro',                  40,   4480000,       'JPY'),
    (14, 10, '2025-06-10', 'Kumo Node',                300,   5940000,       'JPY'),
    (15, 7,  '2025-07-07', 'Sora S300',               6000, 246000000,       'JPY'),
    (16, 7,  '2025-08-04', 'Sora S100',               3000,  73500000,       'JPY'),
    (17, 9,  '2025-08-18', 'Sora S300',                208,   8736000,       'JPY'),
    (18, 9,  '2025-08-18', 'Kumo Cloud subscription',  208,   1722240,       'JPY'),
    (19, 8,  '2025-08-20', 'Sora Pro',                 380,  40660000,       'JPY'),
    (20, 7,  '2025-09-01', 'Sora S300',               4500, 184500000,       'JPY'),
    (21, 12, '2025-06-24', 'Sora Pro',                 400,    339600.00,    'USD'),
    (22, 12, '2025-06-24', 'Kumo Node',                400,     33200.00,    'USD'),
    (23, 12, '2025-06-24', 'Kumo Cloud subscription',  400,     79200.00,    'USD'),
    (24, 14, '2025-07-30', 'Sora Pro',                 180,    171000.00,    'USD'),
    (25, 14, '2025-07-30', 'Kumo Cloud subscription',  180,     27000.00,    'USD'),
    (26, 13, '2025-08-25', 'Sora S300',               6000,   1380000.00,    'USD'),
    (27, 15, '2025-09-12', 'Kumo Node',                120,      9960.00,    'USD'),
    (28, 15, '2025-09-12', 'Sora S300',                 60,     21240.00,    'USD');

-- Submitted expense claims still waiting for a decision, with the employee's name and department.
CREATE VIEW pending_expenses AS
SELECT e.id,
       e.org,
       e.employee_email,
       emp.name AS employee_name,
       emp.department,
       e.date,
       e.category,
       e.amount,
       e.currency,
       e.description
FROM expenses e
JOIN employees emp ON emp.org = e.org AND emp.email = e.employee_email
WHERE e.status = 'pending';
